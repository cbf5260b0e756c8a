//go:build !testclock

package bridge

import (
	"os"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/workflow"
)

// ProcessClock is the clock of a bridge process: real time. It refuses TestClockEnv,
// which only a testclock build honours.
func ProcessClock() (workflow.Clock, error) {
	if os.Getenv(TestClockEnv) != "" {
		return nil, ErrTestClockNotBuilt
	}
	return workflow.SystemClock{}, nil
}

// warnTestClock is for testclock builds; this one runs on real time.
func (c *Connector) warnTestClock(*zerolog.Logger) {}
