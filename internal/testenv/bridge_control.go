package testenv

import (
	"os"
	"strconv"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// bridgeKillTimeout bounds the wait for a SIGKILLed bridge to be reaped.
const bridgeKillTimeout = 10 * time.Second

// Kill ends the bridge's process group with SIGKILL, as a crash or an OOM kill would:
// nothing is flushed or answered. It returns once the process has exited.
func (b *Bridge) Kill() {
	b.t.Helper()
	if !b.terminate(syscall.SIGKILL, bridgeKillTimeout) {
		b.t.Fatalf("carebridge (pid %d) did not exit within %s of SIGKILL", b.cmd.Process.Pid, bridgeKillTimeout)
	}
}

// Restart starts the bridge again with the same config, registration and database,
// after Kill or Stop, and waits until its Twilio routes answer, as Start does. The log
// continues in the same file.
func (b *Bridge) Restart() {
	b.t.Helper()
	if b.cmd != nil {
		select {
		case <-b.exited:
		default:
			b.t.Fatalf("carebridge restarted while it is still running: call Kill or Stop first")
		}
	}
	b.launch()
	b.waitReady()
}

// EditConfig changes the bridge's config file (a YAML map) for its next Restart.
func (b *Bridge) EditConfig(edit func(cfg map[string]any)) {
	b.t.Helper()
	raw, err := os.ReadFile(b.ConfigPath())
	if err != nil {
		b.t.Fatalf("failed to read the bridge's config: %v", err)
	}
	var cfg map[string]any
	if err = yaml.Unmarshal(raw, &cfg); err != nil {
		b.t.Fatalf("failed to parse the bridge's config: %v", err)
	}
	edit(cfg)
	if raw, err = yaml.Marshal(cfg); err != nil {
		b.t.Fatalf("failed to write the bridge's config: %v", err)
	}
	if err = os.WriteFile(b.ConfigPath(), raw, 0o600); err != nil {
		b.t.Fatalf("failed to write the bridge's config: %v", err)
	}
}

// Launch runs the bridge as Start does but returns at once, for tests of what it answers
// while it starts. It is stopped at the end of the test.
func (b *Bridge) Launch() {
	b.t.Helper()
	b.launch()
	b.t.Cleanup(func() {
		b.Stop()
		if b.t.Failed() {
			b.t.Logf("carebridge log tail (%s):\n%s", b.LogPath(), tailFile(b.LogPath(), 60))
		}
		keepLog(b.t, b.LogPath(), "bridge-"+strconv.Itoa(b.port))
	})
}

// Exited reports whether the bridge process has ended, and its exit error.
func (b *Bridge) Exited() (bool, error) {
	select {
	case <-b.exited:
		return true, b.exitErr
	default:
		return false, nil
	}
}
