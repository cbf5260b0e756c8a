// Package loop runs carebridge's background passes over the database (due follow-ups,
// secure alerts): one pass at a time, again when woken, when the next item is due, or at
// least every poll interval; Stop lets a pass in progress finish.
package loop

import (
	"context"
	"sync"
	"time"
)

// Pass does the due work and says when it next has something due (ok false: nothing
// known; the loop looks again after the poll interval). now is the pass's clock.
type Pass func(ctx context.Context) (next time.Time, ok bool)

// Loop is a running background pass.
type Loop struct {
	wakeCh chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start runs pass until Stop. now is the clock the next times are read against (it may be
// moved by tests, so the loop never sleeps longer than poll); minWait keeps a pass whose
// next item is already due from spinning.
func Start(ctx context.Context, now func() time.Time, poll, minWait time.Duration, pass Pass) *Loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &Loop{wakeCh: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			wait := poll
			if next, ok := pass(ctx); ok {
				wait = min(max(next.Sub(now()), minWait), poll)
			}
			select {
			case <-ctx.Done():
				return
			case <-l.wakeCh:
			case <-time.After(wait):
			}
		}
	}()
	return l
}

// Wake makes the loop run a pass now (or right after the one in progress).
func (l *Loop) Wake() {
	if l == nil {
		return
	}
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

// Stop ends the loop and waits for a pass in progress to finish.
func (l *Loop) Stop() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.cancel()
		<-l.done
	})
}
