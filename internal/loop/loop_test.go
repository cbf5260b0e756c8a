package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWakeRunsAPassAndStopWaitsForIt(t *testing.T) {
	var passes atomic.Int32
	inPass := make(chan struct{}, 10)
	release := make(chan struct{})
	l := Start(context.Background(), time.Now, time.Hour, time.Millisecond, func(ctx context.Context) (time.Time, bool) {
		if passes.Add(1) == 2 {
			inPass <- struct{}{}
			<-release
		}
		return time.Time{}, false
	})
	require.Eventually(t, func() bool { return passes.Load() == 1 }, time.Second, time.Millisecond, "a first pass at start")
	l.Wake()
	<-inPass
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a pass was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	assert.Equal(t, int32(2), passes.Load())
}

func TestNextDueTimeWakesTheLoop(t *testing.T) {
	var passes atomic.Int32
	start := time.Now()
	l := Start(context.Background(), time.Now, time.Hour, time.Millisecond, func(ctx context.Context) (time.Time, bool) {
		passes.Add(1)
		return start.Add(30 * time.Millisecond), passes.Load() == 1
	})
	defer l.Stop()
	require.Eventually(t, func() bool { return passes.Load() == 2 }, 5*time.Second, time.Millisecond,
		"the pass runs again when its next item is due, not after the hour-long poll")
}
