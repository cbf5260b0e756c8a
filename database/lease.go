package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// leaseKey names carebridge's advisory lock. PostgreSQL scopes advisory locks to the
// database, so bridges on other databases of the same server do not contend.
const leaseKey int64 = 0x6361726562726467 // "carebrdg"

// ErrLeaseLost is returned by Lease.Check once the lease's connection is gone: the
// database released the lock, and another process may hold it now.
var ErrLeaseLost = errors.New("the active lease on the database was lost")

// Lease is the active process's hold on a PostgreSQL database: a session advisory lock on
// one connection kept open for the life of the process. The database releases it when
// that connection ends, so a process that dies (even by SIGKILL) frees it at once.
type Lease struct {
	conn *sql.Conn
}

// LeaseSupported says whether the database can arbitrate several processes (PostgreSQL);
// SQLite runs one process.
func (db *Database) LeaseSupported() bool { return db.Dialect == dbutil.Postgres }

// TryLease takes the lease if no other process holds it; ok is false when one does.
func (db *Database) TryLease(ctx context.Context) (lease *Lease, ok bool, err error) {
	if !db.LeaseSupported() {
		return nil, false, fmt.Errorf("leases need PostgreSQL, not %s", db.Dialect)
	}
	conn, err := db.RawDB.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("failed to open the lease's connection: %w", err)
	}
	if err = conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", leaseKey).Scan(&ok); err != nil || !ok {
		_ = conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("failed to ask for the lease: %w", err)
		}
		return nil, false, nil
	}
	return &Lease{conn: conn}, true, nil
}

// Check confirms the lease is still held: its connection answers and still owns the lock.
func (l *Lease) Check(ctx context.Context) error {
	var held bool
	err := l.conn.QueryRowContext(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype='advisory' AND pid=pg_backend_pid() AND granted"+
			" AND database=(SELECT oid FROM pg_database WHERE datname=current_database())"+
			" AND ((classid::bigint << 32) | objid::bigint)=$1)", leaseKey).Scan(&held)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	} else if !held {
		return ErrLeaseLost
	}
	return nil
}

// Release gives the lease up and ends its connection (a pooled connection would keep
// the session, and the lock, alive).
func (l *Lease) Release() error {
	_, err := l.conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", leaseKey)
	// ErrBadConn makes database/sql discard the connection instead of pooling it.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	if closeErr := l.conn.Close(); closeErr != nil && !errors.Is(closeErr, sql.ErrConnDone) {
		err = errors.Join(err, closeErr)
	}
	return err
}

// Keep confirms the lease every interval until ctx ends (then it releases it) and calls
// onLost, once, when the lease is gone: the process must stop, another may be active.
func (l *Lease) Keep(ctx context.Context, every time.Duration, onLost func(error)) {
	for {
		select {
		case <-ctx.Done():
			_ = l.Release()
			return
		case <-time.After(every):
		}
		checkCtx, cancel := context.WithTimeout(ctx, every)
		err := l.Check(checkCtx)
		cancel()
		if err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("Lost the active lease: stopping, another process may be active now")
			onLost(err)
			return
		}
	}
}
