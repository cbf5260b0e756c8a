package admin

import (
	"fmt"
	"io"
	"time"
)

// rowProgress writes "Exporting audit log: 1200 of 5000 rows (24%)" to a terminal at
// most once per interval, rewriting the line in place, so a long export shows it is
// moving without pulling a progress-bar library into the server binary.
type rowProgress struct {
	w        io.Writer
	label    string
	total    int
	done     int
	interval time.Duration
	now      func() time.Time
	last     time.Time
	shown    bool
	printed  int // the count on the line now
}

func newRowProgress(w io.Writer, label string, total int, now func() time.Time) *rowProgress {
	return &rowProgress{w: w, label: label, total: total, interval: time.Second, now: now, last: now()}
}

// add counts n more rows and rewrites the line when the interval has passed.
func (p *rowProgress) add(n int) {
	p.done += n
	if t := p.now(); t.Sub(p.last) >= p.interval {
		p.last = t
		p.print()
	}
}

// finish ends the line, if one was written, with the final count.
func (p *rowProgress) finish() {
	if !p.shown {
		return
	}
	if p.printed != p.done {
		p.print()
	}
	fmt.Fprintln(p.w)
}

func (p *rowProgress) print() {
	p.shown, p.printed = true, p.done
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s: %d of %d rows (%d%%)", p.label, p.done, p.total, p.done*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\r%s: %d rows", p.label, p.done)
	}
}
