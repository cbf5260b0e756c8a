//go:build testclock

package workflow

import (
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// ProcessClock is the clock of a test bridge process: real time, moved by the duration in
// the file TestClockEnv names when it is set.
func ProcessClock() (Clock, error) {
	if path := os.Getenv(TestClockEnv); path != "" {
		return &fileClock{path: path}, nil
	}
	return SystemClock{}, nil
}

// fileClock is real time plus the offset written in a file.
type fileClock struct {
	path string
	mu   sync.Mutex
	seen time.Time // the file's modification time when it was last read
	off  time.Duration
}

// Now re-reads the file whenever it changed, so that a test's move takes effect at once.
func (fc *fileClock) Now() time.Time {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if info, err := os.Stat(fc.path); err == nil && !info.ModTime().Equal(fc.seen) {
		if raw, err := os.ReadFile(fc.path); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(raw))); err == nil {
				fc.off, fc.seen = d, info.ModTime()
			}
		}
	}
	return time.Now().Add(fc.off)
}

// WarnTestClock says loudly that this is a test build, and when clock (the bridge's, from
// ProcessClock) is not real.
func WarnTestClock(log *zerolog.Logger, clock Clock) {
	if _, moved := clock.(*fileClock); moved {
		log.Warn().Str("env", TestClockEnv).Msg("The bridge's clock is moved by a test clock file: a testclock build, never for production")
		return
	}
	log.Warn().Msg("This carebridge is a testclock build (tests only): its clock can be moved by " + TestClockEnv)
}
