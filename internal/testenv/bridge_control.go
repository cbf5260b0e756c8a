package testenv

import (
	"syscall"
	"time"
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
