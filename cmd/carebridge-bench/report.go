package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
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

// ratioTarget is issue 8's target for a phase (issue 14's for outbound, at Twilio's
// pace): its throughput at least 80% of the homeserver baseline's.
func ratioTarget(r run, name string, c int) (target, bool) {
	p := findPhase(r, name, c)
	if p == nil {
		return target{}, false
	}
	t := target{DB: r.DB, Name: fmt.Sprintf("%s throughput >= 80%% of baseline (c=%d)", name, c), Value: "-", Status: "not measured (no baseline)"}
	if findPhase(r, "baseline", c) != nil {
		q := ratio(r, *p)
		t.Value, t.Status = fmt.Sprintf("%.0f%%", 100*q), status(q >= 0.8)
	}
	return t, true
}

// headOfLineTarget is issue 14's: a hung conversation holds back only itself, so the
// other conversations' texts go from the homeserver's answer to Twilio at the outbound
// phase's pace (the homeserver's own time to answer is left out: it is not the bridge's,
// and on a shared machine it swings by seconds between phases).
func headOfLineTarget(r run, c int) (target, bool) {
	p := findPhase(r, "headofline", c)
	if p == nil || p.Hung == nil || p.AfterAnswer == nil {
		return target{}, false
	}
	t := target{DB: r.DB, Name: fmt.Sprintf("headofline: others' answer-to-Twilio p99 within 1 s of outbound's, one conversation hung %.0f s (c=%d)",
		p.Hung.HangSeconds, c), Value: fmt.Sprintf("%.0f ms", p.AfterAnswer.P99), Status: "not measured (no outbound)"}
	if out := findPhase(r, "outbound", c); out != nil && out.AfterAnswer != nil {
		diff := p.AfterAnswer.P99 - out.AfterAnswer.P99
		t.Value = fmt.Sprintf("%+.0f ms (%.0f vs %.0f)", diff, p.AfterAnswer.P99, out.AfterAnswer.P99)
		t.Status = status(diff < 1000)
	}
	return t, true
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
		if r.Skipped != "" || (len(r.Phases) == 0 && r.Scale == nil && r.Secure == nil) {
			continue
		}
		for _, name := range []string{"inbound", "outbound"} {
			for _, c := range conc {
				if t, ok := ratioTarget(r, name, c); ok {
					out = append(out, t)
				}
			}
		}
		for _, c := range conc {
			if t, ok := headOfLineTarget(r, c); ok {
				out = append(out, t)
			}
		}
		if in := findPhase(r, "inbound", 32); in != nil {
			out = append(out, target{r.DB, "webhook answer p99 < 50 ms (c=32)",
				fmt.Sprintf("%.1f ms", in.Answer.P99), status(in.Answer.P99 < 50)})
		} else {
			out = append(out, target{r.DB, "webhook answer p99 < 50 ms (c=32)", "-", "not measured (no c=32)"})
		}
		out = append(out, rssTarget(r))
		if r.Scale != nil {
			out = append(out, target{r.DB, fmt.Sprintf("webhook answer at %d conversations within 10%% of 100 (p50)", r.Scale.Conversations),
				fmt.Sprintf("%+.0f%%", 100*r.Scale.AnswerP50Change), status(r.Scale.AnswerP50Change <= 0.10)})
			out = append(out, target{r.DB, fmt.Sprintf("webhook answer at %d conversations within 10%% of 100 (p99)", r.Scale.Conversations),
				fmt.Sprintf("%+.0f%%", 100*r.Scale.AnswerP99Change), status(r.Scale.AnswerP99Change <= 0.10)})
		}
	}
	return out
}

// rssTarget is the bridge's memory with the secure chat's pages open, after the scale
// phase filled the database; a smaller run shows its figure without judging it.
func rssTarget(r run) target {
	const name = "bridge RSS < 150 MB with 1,000 open sessions and 100,000 conversations"
	sec := r.Secure
	if sec == nil || sec.Sessions == 0 {
		return target{r.DB, name, "-", "not measured (secure chat sessions skipped)"}
	}
	value := fmt.Sprintf("%.0f MB", sec.RSSOpenMB)
	if sec.Sessions < 1000 || sec.Conversations < 100000 {
		return target{r.DB, name, value, fmt.Sprintf("not measured at that size (%d sessions, %d conversations)",
			sec.Sessions, sec.Conversations)}
	}
	return target{r.DB, name, value, status(sec.RSSOpenMB < 150)}
}

func printReport(w io.Writer, res results) {
	fmt.Fprintf(w, "\ncarebridge bench: n=%d per measurement, %d patients, %d CPUs, load average at start %s, message status events %s\n",
		res.N, res.Patients, res.CPUs, res.LoadAvg, map[bool]string{true: "on", false: "off"}[res.StatusEvents])
	fmt.Fprintf(w, "Twilio (the fake) answers each REST call in %s.\n", twilioPace(res.TwilioLatencyMS))
	if res.RoundCount > 1 {
		fmt.Fprintf(w, "Each concurrency's phases ran %d times in turn; each row is that phase's median round, and its ratio is to the median baseline.\n", res.RoundCount)
	}
	if res.OutboxConcurrency > 0 {
		fmt.Fprintf(w, "The bridge's outbox.concurrency: %d (set by -outbox-concurrency).\n", res.OutboxConcurrency)
	}
	fmt.Fprintln(w, "Note: "+res.Note)
	fmt.Fprintln(w, "answer: webhook answer (inbound) or homeserver answer to the send (outbound, headofline, baseline);")
	fmt.Fprintln(w, "seen: until /sync shows it (inbound, baseline) or fake Twilio receives it (outbound, headofline); ratio: throughput / baseline's.")
	if slices.Contains(res.Measured, "headofline") {
		fmt.Fprintf(w, "headofline: outbound while every send to one patient hangs %.0f s at Twilio; its figures are the other conversations' texts.\n",
			res.HangSeconds)
	}
	if slices.ContainsFunc(res.Runs, func(r run) bool { return r.Secure != nil }) {
		fmt.Fprintln(w, "secure-verify: answer to the code's POST (session cookie), msg/s verifications per second, CPU while verifying;")
		fmt.Fprintln(w, "secure-sessions: answer is each event stream's start, seen a staff message reaching an open page, RSS with every")
		fmt.Fprintln(w, "stream open, CPU while they idle.")
	}
	for _, r := range res.Runs {
		fmt.Fprintf(w, "\n== %s ==\n", r.DB)
		if r.Skipped != "" {
			fmt.Fprintln(w, "skipped: "+r.Skipped)
			continue
		}
		if r.Error != "" {
			fmt.Fprintln(w, "error: "+r.Error)
		}
		printTable(w, r)
		printRounds(w, r)
		printStaffTexts(w, r)
		printCPU(w, r)
		if sc := r.Scale; sc != nil {
			fmt.Fprintf(w, "scale: %d conversations inserted in %.1f s; webhook answer p50 %+.0f%%, p99 %+.0f%%\n",
				sc.Conversations, sc.InsertSeconds, 100*sc.AnswerP50Change, 100*sc.AnswerP99Change)
			fmt.Fprintf(w, "       lookup by key p50/p99 %.2f/%.2f ms -> %.2f/%.2f ms; by patient number %.2f/%.2f ms -> %.2f/%.2f ms\n",
				sc.LookupKeyBefore.P50, sc.LookupKeyBefore.P99, sc.LookupKeyAfter.P50, sc.LookupKeyAfter.P99,
				sc.LookupTelBefore.P50, sc.LookupTelBefore.P99, sc.LookupTelAfter.P50, sc.LookupTelAfter.P99)
		}
		if sec := r.Secure; sec != nil {
			printSecure(w, sec)
		}
	}
	fmt.Fprintln(w, "\nTargets (reported, not asserted; a shared 2-core machine makes absolute figures noisy):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range res.Targets {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", t.DB, t.Name, t.Value, t.Status)
	}
	_ = tw.Flush()
}

// printTable prints a run's phases, one row each, and the secure chat's two rows.
func printTable(w io.Writer, r run) {
	if len(r.Phases) == 0 && r.Scale == nil && r.Secure == nil {
		return
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
	// The secure chat's rows: verifications are timed like texts; the open pages'
	// "answer" is each stream's start and "seen" a staff message reaching an open page.
	if sec := r.Secure; sec != nil && sec.Verifications > 0 {
		a := sec.VerifyAnswer
		fmt.Fprintf(tw, "secure-verify\t%d\t%d\t%.1f\t%.1f\t%.1f\t-\t-\t-\t%.1f\t-\t%.0f\t%.0f%%\t\n",
			sec.VerifyConcurrency, sec.Verifications, a.P50, a.P95, a.P99, sec.VerifyPerSecond, sec.VerifyRSSMB, sec.VerifyBridgeCPUPct)
	}
	if sec := r.Secure; sec != nil && sec.Sessions > 0 {
		a, u := sec.StreamStart, sec.LiveUpdate
		seen := "-\t-\t-"
		if u.N > 0 {
			seen = fmt.Sprintf("%.1f\t%.1f\t%.1f", u.P50, u.P95, u.P99)
		}
		fmt.Fprintf(tw, "secure-sessions\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t-\t-\t%.0f\t%.1f%%\t\n",
			secureOpenConcurrency, sec.Sessions, a.P50, a.P95, a.P99, seen, sec.RSSOpenMB, sec.IdleCPUPct)
	}
	_ = tw.Flush()
}

func twilioPace(latencyMS float64) string {
	if latencyMS == 0 {
		return "no time (-twilio-latency 0)"
	}
	return fmt.Sprintf("%g ms (-twilio-latency)", latencyMS)
}

// printStaffTexts says, below the table, what the staff-text phases cost the homeserver
// in status events and what became of the head-of-line phase's hung conversation.
func printStaffTexts(w io.Writer, r run) {
	for _, p := range r.Phases {
		if a := p.AfterAnswer; a != nil {
			fmt.Fprintf(w, "%s c=%d: from the homeserver's answer to Twilio p50/p95/p99 %.1f/%.1f/%.1f ms\n",
				p.Name, p.Concurrency, a.P50, a.P95, a.P99)
		}
		if p.Hung != nil {
			h := p.Hung
			fmt.Fprintf(w, "headofline c=%d: patient %d's %d texts hung %.0f s each at Twilio; the first was there %.1f s after it was sent, the last %.1f s after the hang was lifted\n",
				p.Concurrency, h.Patient, h.Texts, h.HangSeconds, h.FirstSeconds, h.DrainSeconds)
		}
		if p.Duplicates > 0 {
			fmt.Fprintf(w, "%s c=%d: %d staff texts reached Twilio more than once\n", p.Name, p.Concurrency, p.Duplicates)
		}
	}
	var costs []string
	for _, p := range r.Phases {
		if p.StatusEventsPerText != nil {
			costs = append(costs, fmt.Sprintf("%s c=%d %.2f", p.Name, p.Concurrency, *p.StatusEventsPerText))
		}
	}
	if len(costs) > 0 {
		fmt.Fprintf(w, "status events (com.beeper.message_send_status) per staff text: %s\n", strings.Join(costs, ", "))
	}
}

// printCPU says where each phase's CPU went: the machine's busy share and every command
// that used 1% of a core or more (the homeserver, the bridge, PostgreSQL and this bench's
// clients share the machine; a ratio under 1 on a busy machine is the bridge's share of it).
func printCPU(w io.Writer, r run) {
	for _, p := range r.Phases {
		if p.MachineCPUPct == 0 {
			continue
		}
		cmds := make([]string, 0, len(p.CPUByCommand))
		for cmd := range p.CPUByCommand {
			cmds = append(cmds, cmd)
		}
		slices.SortFunc(cmds, func(a, b string) int { return cmp.Compare(p.CPUByCommand[b], p.CPUByCommand[a]) })
		parts := make([]string, len(cmds))
		for i, cmd := range cmds {
			parts[i] = fmt.Sprintf("%s %.0f%%", cmd, p.CPUByCommand[cmd])
		}
		fmt.Fprintf(w, "CPU %s c=%d: machine %.0f%% of %d%%; %s\n", p.Name, p.Concurrency, p.MachineCPUPct,
			100*runtime.NumCPU(), strings.Join(parts, ", "))
	}
}

func printSecure(w io.Writer, sec *secure) {
	fmt.Fprintln(w, "secure chat:")
	if sec.WebReplicas > 0 {
		fmt.Fprintf(w, "  pages served by %d web replicas (carebridge web), patients spread over them; the bridge texts the codes\n", sec.WebReplicas)
	}
	if sec.Verifications > 0 {
		fmt.Fprintf(w, "  code verifications: %d at c=%d, one per link and patient: %.1f/s, answer p50/p95/p99 %.1f/%.1f/%.1f ms, bridge CPU %.0f%%\n",
			sec.Verifications, sec.VerifyConcurrency, sec.VerifyPerSecond, sec.VerifyAnswer.P50, sec.VerifyAnswer.P95,
			sec.VerifyAnswer.P99, sec.VerifyBridgeCPUPct)
		fmt.Fprintf(w, "    (before, not timed: %d links opened and codes texted through the fake Twilio in %.1f s; %d links from !sms secure alerts, the rest stored)\n",
			sec.Verifications, sec.SetupSeconds, sec.LiveRooms)
	}
	if sec.Sessions == 0 {
		return
	}
	where := fmt.Sprintf("%d conversations in the database", sec.Conversations)
	if sec.AfterScale {
		where = "after the scale phase, " + where
	}
	fmt.Fprintf(w, "  open chat pages: %d event streams at once (%d sessions from verifications, %d stored), %s\n",
		sec.Sessions, sec.VerifiedSessions, sec.Sessions-sec.VerifiedSessions, where)
	fmt.Fprintf(w, "    opened in %.1f s, stream start p50/p99 %.1f/%.1f ms; %d ended early\n",
		sec.OpenSeconds, sec.StreamStart.P50, sec.StreamStart.P99, sec.Dropped)
	fmt.Fprintf(w, "    bridge RSS %.0f MB at the phase's start, %.0f MB before the streams, %.0f MB with them open (%+.1f KB per stream), peak %.0f MB\n",
		sec.RSSStartMB, sec.RSSBeforeMB, sec.RSSOpenMB, sec.PerStreamKB, sec.RSSPeakMB)
	if sec.WebReplicas > 0 {
		fmt.Fprintf(w, "    web replicas' RSS with the streams open: %.0f MB together\n", sec.WebRSSOpenMB)
	}
	fmt.Fprintf(w, "    bridge CPU with the streams open and idle: %.1f%% of one core over %.0f s (%d keepalives, each a session check)\n",
		sec.IdleCPUPct, sec.IdleSeconds, sec.IdleKeepalives)
	if sec.GoroutinesOpen >= 0 {
		fmt.Fprintf(w, "    bridge goroutines %.0f before, %.0f open, %.0f after closing; carebridge_secure_sessions_active %.0f\n",
			sec.GoroutinesStart, sec.GoroutinesOpen, sec.GoroutinesAfter, sec.ActiveSessions)
	}
	if sec.LiveUpdate.N > 0 {
		fmt.Fprintf(w, "    staff message to the update on the patient's open page: p50/max %.0f/%.0f ms over %d live rooms\n",
			sec.LiveUpdate.P50, sec.LiveUpdate.Max, sec.LiveUpdate.N)
	}
}
