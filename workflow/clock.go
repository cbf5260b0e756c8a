package workflow

import "time"

// Clock is the time the workflow rules run on. The bridge owns one and passes it down;
// tests pass a fixed or moving one.
type Clock interface {
	Now() time.Time
}

// SystemClock is real time.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// ClockFunc turns a function into a Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }
