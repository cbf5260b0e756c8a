package outbox

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer holds each clinic number to outbox.per_number_rate texts a second. The run loop
// asks it before handing a text to a worker: a number with no room now is skipped (its
// texts stay queued, no worker waits for it) and looked at again when it has.
type pacer struct {
	perSecond float64
	mu        sync.Mutex
	numbers   map[string]*rate.Limiter
}

func newPacer(perSecond float64) *pacer {
	return &pacer{perSecond: perSecond, numbers: map[string]*rate.Limiter{}}
}

// take counts a text from the number `from` sent at now and returns 0, or returns how
// long until the number may send one (and counts nothing).
func (p *pacer) take(from string, now time.Time) time.Duration {
	if p.perSecond <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	lim := p.numbers[from]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(p.perSecond), 1)
		p.numbers[from] = lim
	}
	r := lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return wait
	}
	return 0
}
