//go:build race

package logmask

// raceEnabled: the race detector makes sync.Pool drop items, so a pooled buffer allocates.
const raceEnabled = true
