//go:build testclock

package workflow

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestATestBuildsClockIsMovedByTheFileAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock-offset")
	t.Setenv(TestClockEnv, path)
	clock, err := ProcessClock()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), clock.Now(), time.Second, "no file yet: real time")

	require.NoError(t, os.WriteFile(path, []byte("36h"), 0o600))
	assert.WithinDuration(t, time.Now().Add(36*time.Hour), clock.Now(), time.Second)

	require.NoError(t, os.WriteFile(path, []byte("7m\n"), 0o600))
	// The file's modification time must change for the move to be seen.
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(time.Second)))
	assert.WithinDuration(t, time.Now().Add(7*time.Minute), clock.Now(), time.Second)
}
