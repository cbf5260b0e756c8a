package database_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// One process holds the lease at a time, also when many ask at once, each on its own
// connection (a session, as each process has); releasing frees it.
func TestLeaseIsHeldByOneProcess(t *testing.T) {
	ctx := context.Background()
	first := openDB(t, "postgres")
	assert.False(t, openDB(t, "sqlite").LeaseSupported(), "SQLite runs one process")

	lease, ok, err := first.TryLease(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, lease.Check(ctx))

	var got atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, ok, err := first.TryLease(ctx)
			assert.NoError(t, err)
			if ok {
				got.Add(1)
				_ = l.Release()
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, got.Load(), "nobody else gets a held lease")

	require.NoError(t, lease.Release())
	second, ok, err := first.TryLease(ctx)
	require.NoError(t, err)
	require.True(t, ok, "free once released")
	require.NoError(t, second.Check(ctx))
	require.NoError(t, second.Release())
	assert.ErrorIs(t, second.Check(ctx), database.ErrLeaseLost, "a released lease is not held")
}

// Keep confirms the lease until its context ends, then releases it; when the lease's
// connection dies (as when the database restarts), it reports the loss once.
func TestLeaseKeepReleasesOnStopAndReportsALoss(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, "postgres")

	lease, ok, err := db.TryLease(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	keepCtx, stop := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		lease.Keep(keepCtx, 20*time.Millisecond, func(err error) { t.Errorf("lease reported lost while held: %v", err) })
	}()
	time.Sleep(100 * time.Millisecond)
	_, ok, err = db.TryLease(ctx)
	require.NoError(t, err)
	require.False(t, ok, "held while kept")
	stop()
	<-kept
	again, ok, err := db.TryLease(ctx)
	require.NoError(t, err)
	require.True(t, ok, "released when Keep's context ended")

	lost := make(chan error, 2)
	go again.Keep(ctx, 20*time.Millisecond, func(err error) { lost <- err })
	// The database ends the lease's session ("carebrdg", the advisory lock's key).
	var ended bool
	require.NoError(t, db.RawDB.QueryRowContext(ctx,
		"SELECT bool_or(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype='advisory' AND granted"+
			" AND ((classid::bigint << 32) | objid::bigint)=$1", int64(0x6361726562726467)).Scan(&ended))
	require.True(t, ended)
	select {
	case err := <-lost:
		assert.ErrorIs(t, err, database.ErrLeaseLost)
	case <-time.After(5 * time.Second):
		t.Fatal("the lost lease was not reported")
	}
	select {
	case err := <-lost:
		t.Fatalf("the loss was reported twice: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}
