package testenv

// Pid is the running bridge's process ID (0 before Start), so that a benchmark can read
// its memory and CPU time from /proc.
func (b *Bridge) Pid() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}
