package database

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lib/pq"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
)

// Signals between carebridge processes that share one PostgreSQL database (LISTEN/NOTIFY):
// "something changed, look in the database". A payload names no patient: PostgreSQL may
// log statements with their parameters.

// notifyQuery sends a signal; inside a transaction it goes out at commit.
const notifyQuery = `SELECT pg_notify($1, $2)` // only: postgres

// Shared reports whether several processes may use this database at once (PostgreSQL).
// SQLite is one process's: the bridge's.
func (db *Database) Shared() bool { return db.Dialect == dbutil.Postgres }

// Notify signals every process listening on channel. On SQLite it does nothing: there is
// no other process to tell.
func (db *Database) Notify(ctx context.Context, channel, payload string) error {
	if !db.Shared() {
		return nil
	}
	if _, err := db.Exec(ctx, notifyQuery, channel, payload); err != nil {
		return fmt.Errorf("failed to signal %s: %w", channel, err)
	}
	return nil
}

// Signal is one notification received, or (Reconnected) word that the connection was
// lost and signals sent meanwhile are gone: listeners then look at everything again.
type Signal struct {
	Channel     string
	Payload     string
	Reconnected bool
}

// Listener receives signals over a connection of its own, reconnecting by itself.
type Listener struct {
	pq        *pq.Listener
	signals   chan Signal
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	connected bool
}

// ErrNotShared is Listen's answer on SQLite.
var ErrNotShared = errors.New("signals between processes need PostgreSQL")

// Listen opens a listener for channels on uri, the PostgreSQL connection string of this
// database (database.uri in the config); on SQLite it is ErrNotShared.
func (db *Database) Listen(uri string, log zerolog.Logger, channels ...string) (*Listener, error) {
	if !db.Shared() {
		return nil, ErrNotShared
	}
	l := &Listener{signals: make(chan Signal, 64), done: make(chan struct{})}
	l.pq = pq.NewListener(uri, 500*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		l.mu.Lock()
		l.connected = ev == pq.ListenerEventConnected || ev == pq.ListenerEventReconnected
		l.mu.Unlock()
		switch ev {
		case pq.ListenerEventDisconnected:
			log.Warn().Err(err).Msg("Lost the database connection that receives signals; reconnecting")
		case pq.ListenerEventReconnected:
			log.Info().Msg("Reconnected the database connection that receives signals")
		case pq.ListenerEventConnectionAttemptFailed:
			log.Warn().Err(err).Msg("Failed to connect for database signals; retrying")
		}
	})
	for _, channel := range channels {
		if err := l.pq.Listen(channel); err != nil {
			_ = l.pq.Close()
			return nil, fmt.Errorf("failed to listen on %s: %w", channel, err)
		}
	}
	go l.forward()
	return l, nil
}

func (l *Listener) forward() {
	defer close(l.signals)
	for {
		select {
		case <-l.done:
			return
		case n, ok := <-l.pq.NotificationChannel():
			if !ok {
				return
			}
			signal := Signal{Reconnected: true}
			if n != nil {
				signal = Signal{Channel: n.Channel, Payload: n.Extra}
			}
			select {
			case l.signals <- signal:
			case <-l.done:
				return
			}
		}
	}
}

// Signals delivers what arrives until Close.
func (l *Listener) Signals() <-chan Signal { return l.signals }

// Ping checks the listener's connection (for readiness checks).
func (l *Listener) Ping() error {
	l.mu.Lock()
	connected := l.connected
	l.mu.Unlock()
	if !connected {
		return errors.New("not connected")
	}
	return l.pq.Ping()
}

// Close ends the listener.
func (l *Listener) Close() {
	l.closeOnce.Do(func() {
		close(l.done)
		_ = l.pq.Close()
	})
}
