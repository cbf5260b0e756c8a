package keyedlock

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestKeyedLocks(t *testing.T) {
	var k Locks
	// One key: holders take turns, and nobody is inside twice.
	var inside, most, total int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			unlock := k.Lock("clinic/patient-a")
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			inside--
			total++
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, 1, most, "two holders of one key at once")
	assert.Equal(t, 50, total)
	assert.Zero(t, k.Held(), "a lock nobody holds or waits for is forgotten")

	// Different keys do not wait for each other.
	unlockA := k.Lock("clinic/patient-a")
	got := make(chan struct{})
	go func() {
		unlock := k.Lock("clinic/patient-b")
		close(got)
		unlock()
	}()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("another conversation's lock waited for this one")
	}
	assert.Equal(t, 1, k.Held())
	unlockA()
	assert.Zero(t, k.Held())
}
