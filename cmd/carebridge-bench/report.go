package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// target is one of issue 8's targets, reported, never asserted.
type target struct {
	DB     string `json:"db"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	Status string `json:"status"` // met, MISSED, not measured
}

func findPhase(r run, name string, c int) *phase {
	for i := range r.Phases {
		if r.Phases[i].Name == name && r.Phases[i].Concurrency == c {
			return &r.Phases[i]
		}
	}
	return nil
}

func ratio(r run, p phase) float64 {
	if p.Name == "baseline" {
		return 0
	}
	base := findPhase(r, "baseline", p.Concurrency)
	if base == nil || base.Throughput == 0 {
		return 0
	}
	return p.Throughput / base.Throughput
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func checkTargets(runs []run, conc []int) []target {
	var out []target
	for _, r := range runs {
		if r.Skipped != "" || len(r.Phases) == 0 {
			continue
		}
		for _, c := range conc {
			if in := findPhase(r, "inbound", c); in != nil {
				q := ratio(r, *in)
				out = append(out, target{r.DB, fmt.Sprintf("inbound throughput >= 80%% of baseline (c=%d)", c),
					fmt.Sprintf("%.0f%%", 100*q), status(q >= 0.8)})
			}
		}
		if in := findPhase(r, "inbound", 32); in != nil {
			out = append(out, target{r.DB, "webhook answer p99 < 50 ms (c=32)",
				fmt.Sprintf("%.1f ms", in.Answer.P99), status(in.Answer.P99 < 50)})
		} else {
			out = append(out, target{r.DB, "webhook answer p99 < 50 ms (c=32)", "-", "not measured (no c=32)"})
		}
		out = append(out, target{r.DB, "RSS < 150 MB with 1,000 sessions and 100,000 conversations", "-",
			"not measured (secure chat sessions not implemented in the bench yet)"})
		if r.Scale != nil {
			out = append(out, target{r.DB, fmt.Sprintf("webhook answer at %d conversations within 10%% of 100 (p50)", r.Scale.Conversations),
				fmt.Sprintf("%+.0f%%", 100*r.Scale.AnswerP50Change), status(r.Scale.AnswerP50Change <= 0.10)})
			out = append(out, target{r.DB, fmt.Sprintf("webhook answer at %d conversations within 10%% of 100 (p99)", r.Scale.Conversations),
				fmt.Sprintf("%+.0f%%", 100*r.Scale.AnswerP99Change), status(r.Scale.AnswerP99Change <= 0.10)})
		}
	}
	return out
}

func printReport(w io.Writer, res results) {
	fmt.Fprintf(w, "\ncarebridge bench: n=%d per measurement, %d patients, %d CPUs, load average at start %s\n",
		res.N, res.Patients, res.CPUs, res.LoadAvg)
	fmt.Fprintln(w, "Note: "+res.Note)
	fmt.Fprintln(w, "answer: webhook answer (inbound) or homeserver answer to the send (outbound, baseline);")
	fmt.Fprintln(w, "seen: until /sync shows it (inbound, baseline) or fake Twilio receives it (outbound); ratio: throughput / baseline's.")
	for _, r := range res.Runs {
		fmt.Fprintf(w, "\n== %s ==\n", r.DB)
		if r.Skipped != "" {
			fmt.Fprintln(w, "skipped: "+r.Skipped)
			continue
		}
		if r.Error != "" {
			fmt.Fprintln(w, "error: "+r.Error)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "phase\tc\tn\tanswer p50\tp95\tp99 ms\tseen p50\tp95\tp99 ms\tmsg/s\tratio\tRSS MB\tbridge CPU\t")
		row := func(p phase, q float64) {
			rs := "-"
			if q > 0 {
				rs = fmt.Sprintf("%.2f", q)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%.0f\t%.0f%%\t\n",
				p.Name, p.Concurrency, p.N, p.Answer.P50, p.Answer.P95, p.Answer.P99,
				p.Seen.P50, p.Seen.P95, p.Seen.P99, p.Throughput, rs, p.BridgeRSSMB, p.BridgeCPUPct)
		}
		for _, p := range r.Phases {
			row(p, ratio(r, p))
		}
		if sc := r.Scale; sc != nil {
			row(sc.Before, 0)
			row(sc.After, 0)
		}
		_ = tw.Flush()
		if sc := r.Scale; sc != nil {
			fmt.Fprintf(w, "scale: %d conversations inserted in %.1f s; webhook answer p50 %+.0f%%, p99 %+.0f%%\n",
				sc.Conversations, sc.InsertSeconds, 100*sc.AnswerP50Change, 100*sc.AnswerP99Change)
			fmt.Fprintf(w, "       lookup by key p50/p99 %.2f/%.2f ms -> %.2f/%.2f ms; by patient number %.2f/%.2f ms -> %.2f/%.2f ms\n",
				sc.LookupKeyBefore.P50, sc.LookupKeyBefore.P99, sc.LookupKeyAfter.P50, sc.LookupKeyAfter.P99,
				sc.LookupTelBefore.P50, sc.LookupTelBefore.P99, sc.LookupTelAfter.P50, sc.LookupTelAfter.P99)
		}
	}
	fmt.Fprintln(w, "\nTargets (reported, not asserted; a shared 2-core machine makes absolute figures noisy):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range res.Targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.DB, t.Name, t.Value, t.Status)
	}
	_ = tw.Flush()
}
