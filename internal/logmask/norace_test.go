//go:build !race

package logmask

const raceEnabled = false
