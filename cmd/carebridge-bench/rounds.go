package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// roundLabel names a phase's round in progress lines ("" when only one round runs).
func roundLabel(round int) string {
	if round == 0 {
		return ""
	}
	return fmt.Sprintf(" round %d", round)
}

// medianRounds keeps, for each phase and concurrency in the order they first ran, the
// round whose throughput is the median (the lower middle one of an even count): a real
// measurement, not an average of several, so its latencies and CPU belong to it.
func medianRounds(all []phase) []phase {
	type key struct {
		name string
		c    int
	}
	var order []key
	byKey := map[key][]phase{}
	for _, p := range all {
		k := key{p.Name, p.Concurrency}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], p)
	}
	out := make([]phase, 0, len(order))
	for _, k := range order {
		ps := slices.Clone(byKey[k])
		slices.SortStableFunc(ps, func(a, b phase) int { return cmp.Compare(a.Throughput, b.Throughput) })
		out = append(out, ps[(len(ps)-1)/2])
	}
	return out
}

// printRounds lists each phase's throughput in every round and, for the phases measured
// against the baseline, each round's ratio to the baseline of the same round (the two ran
// minutes apart at most), so that the spread behind the medians is in the report.
func printRounds(w io.Writer, r run) {
	if len(r.Rounds) == 0 {
		return
	}
	fmt.Fprintln(w, "rounds (msg/s in the order they ran; the table above has each phase's median round):")
	for _, p := range r.Phases {
		var rates, ratios []string
		for _, q := range r.Rounds {
			if q.Name != p.Name || q.Concurrency != p.Concurrency {
				continue
			}
			rates = append(rates, fmt.Sprintf("%.1f", q.Throughput))
			if base := roundPhase(r, "baseline", q.Concurrency, q.Round); q.Name != "baseline" && base != nil && base.Throughput > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f", q.Throughput/base.Throughput))
			}
		}
		line := fmt.Sprintf("  %s c=%d: %s", p.Name, p.Concurrency, strings.Join(rates, " "))
		if len(ratios) > 0 {
			line += "; ratio to the same round's baseline " + strings.Join(ratios, " ")
		}
		fmt.Fprintln(w, line)
	}
}

// roundPhase is the phase of that name, concurrency and round among a run's rounds.
func roundPhase(r run, name string, c, round int) *phase {
	for i := range r.Rounds {
		if q := &r.Rounds[i]; q.Name == name && q.Concurrency == c && q.Round == round {
			return q
		}
	}
	return nil
}
