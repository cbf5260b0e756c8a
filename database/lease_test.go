package database_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

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
