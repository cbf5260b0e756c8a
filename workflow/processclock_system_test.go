//go:build !testclock

package workflow

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAProductionBuildRunsOnRealTimeAndRefusesATestClockFile(t *testing.T) {
	t.Setenv(TestClockEnv, "")
	clock, err := ProcessClock()
	require.NoError(t, err)
	assert.Equal(t, SystemClock{}, clock)

	t.Setenv(TestClockEnv, "/tmp/carebridge-test/clock-offset")
	_, err = ProcessClock()
	assert.ErrorIs(t, err, ErrTestClockNotBuilt)
	assert.Contains(t, err.Error(), "built without the testclock tag")
}
