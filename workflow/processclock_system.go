//go:build !testclock

package workflow

import (
	"os"

	"github.com/rs/zerolog"
)

// ProcessClock is the clock of a bridge process: real time. It refuses TestClockEnv,
// which only a testclock build honours.
func ProcessClock() (Clock, error) {
	if os.Getenv(TestClockEnv) != "" {
		return nil, ErrTestClockNotBuilt
	}
	return SystemClock{}, nil
}

// WarnTestClock is for testclock builds; this one runs on real time.
func WarnTestClock(*zerolog.Logger, Clock) {}
