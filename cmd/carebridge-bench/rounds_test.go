package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMedianRoundsKeepsEachPhasesMedianRound(t *testing.T) {
	all := []phase{
		{Name: "baseline", Concurrency: 8, Round: 1, Throughput: 80},
		{Name: "outbound", Concurrency: 8, Round: 1, Throughput: 50},
		{Name: "baseline", Concurrency: 8, Round: 2, Throughput: 60},
		{Name: "outbound", Concurrency: 8, Round: 2, Throughput: 70},
		{Name: "baseline", Concurrency: 8, Round: 3, Throughput: 90},
		{Name: "outbound", Concurrency: 8, Round: 3, Throughput: 40},
		{Name: "baseline", Concurrency: 32, Round: 1, Throughput: 30},
		{Name: "baseline", Concurrency: 32, Round: 2, Throughput: 20},
	}
	got := medianRounds(all)
	require.Len(t, got, 3, "one per phase and concurrency")
	assert.Equal(t, phase{Name: "baseline", Concurrency: 8, Round: 1, Throughput: 80}, got[0])
	assert.Equal(t, phase{Name: "outbound", Concurrency: 8, Round: 1, Throughput: 50}, got[1])
	// Of an even count, the lower middle round.
	assert.Equal(t, phase{Name: "baseline", Concurrency: 32, Round: 2, Throughput: 20}, got[2])
	assert.Equal(t, 90.0, all[4].Throughput, "the rounds are left in the order they ran")

	var out bytes.Buffer
	printRounds(&out, run{Phases: got, Rounds: all})
	assert.Contains(t, out.String(), "baseline c=8: 80.0 60.0 90.0\n")
	assert.Contains(t, out.String(), "outbound c=8: 50.0 70.0 40.0; ratio to the same round's baseline 0.62 1.17 0.44\n")
	assert.Contains(t, out.String(), "baseline c=32: 30.0 20.0\n")
}
