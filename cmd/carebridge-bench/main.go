// Command carebridge-bench measures carebridge against the homeserver's own limit in the
// same run (issue 8): inbound webhooks and outbound staff texts on SQLite and PostgreSQL,
// each beside a baseline of the same Matrix work without the bridge, with the fake Twilio
// answering at Twilio's pace and one conversation's sends hanging (issue 14), then the secure
// chat (code verifications, the bridge's memory and CPU with many chat pages open). It
// prints a table and writes JSON to bench/results/. It reports the targets; it never
// fails on time.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// run is one database's results.
type run struct {
	DB      string  `json:"db"`
	Skipped string  `json:"skipped,omitempty"`
	Error   string  `json:"error,omitempty"`
	Phases  []phase `json:"phases"`
	// Rounds holds every round's phases when -rounds is above 1; Phases then holds, for
	// each phase and concurrency, the round with the median throughput.
	Rounds []phase `json:"rounds,omitempty"`
	Scale  *scale  `json:"scale,omitempty"`
	Secure *secure `json:"secure,omitempty"`
}

type results struct {
	Started     time.Time `json:"started"`
	N           int       `json:"n"`
	Patients    int       `json:"patients"`
	Concurrency []int     `json:"concurrency"`
	Measured    []string  `json:"measured"`
	// StatusEvents is the bridge's matrix.message_status_events in this run.
	StatusEvents bool `json:"message_status_events"`
	// TwilioLatencyMS is how long the fake Twilio took to answer each REST call;
	// HangSeconds how long the head-of-line phase's hung sends waited.
	TwilioLatencyMS float64 `json:"twilio_latency_ms"`
	// RoundCount is how often each concurrency's phases ran, one after another (-rounds).
	RoundCount int `json:"rounds"`
	// OutboxConcurrency is the bridge's outbox.concurrency in this run (0: its default).
	OutboxConcurrency int      `json:"outbox_concurrency,omitempty"`
	HangSeconds       float64  `json:"hang_s"`
	CPUs              int      `json:"cpus"`
	LoadAvg           string   `json:"loadavg_at_start"`
	Note              string   `json:"note"`
	Runs              []run    `json:"runs"`
	Targets           []target `json:"targets"`
}

// allPhases are what -phases chooses from, in the order they run.
var allPhases = []string{"baseline", "inbound", "outbound", "headofline", "scale", "secure"}

// diagnosticPhases run only when asked for with -phases: stopped is the baseline's work
// in the bridge's rooms with the bridge process stopped (the homeserver's cost of those
// rooms, without the bridge beside it).
var diagnosticPhases = []string{"stopped"}

const seenNote = "Inbound 'seen' is when the nurse's /sync delivered the patient ghost's m.room.encrypted " +
	"event (counted, not decrypted). Baseline is the same client sending the same number of encrypted " +
	"texts into rooms without the bridge, until its /sync echoes them."

func main() {
	n := flag.Int("n", 1000, "messages per measurement")
	patients := flag.Int("patients", 100, "patient numbers texting the clinic")
	levels := flag.String("c", "1,8,32", "concurrency levels, comma-separated")
	dbs := flag.String("db", "sqlite,postgres", "databases, comma-separated, on Dendrite; synapse/sqlite runs on Synapse")
	conversations := flag.Int("conversations", 100000, "conversations in the database for the scale measurement (0: skip)")
	verifications := flag.Int("verifications", 1000, "secure chat code verifications to time, each on its own link and patient")
	sessions := flag.Int("sessions", 1000, "secure chat pages held open at once, each with its live-update stream (0: skip)")
	measure := flag.String("phases", strings.Join(allPhases, ","), "what to measure, comma-separated (the warm-up always runs)")
	out := flag.String("out", "bench/results", "folder for the JSON results")
	pprofDir := flag.String("pprof", "", "folder for CPU profiles of the bridge during each measurement (empty: none)")
	statusEvents := flag.Bool("status-events", false, "matrix.message_status_events of the bridge (the default, false: a staff text costs the homeserver one room event; true: three)")
	twilioLatency := flag.Duration("twilio-latency", 200*time.Millisecond, "how long the fake Twilio takes to answer each REST call (0: at once, the figures before issue 14)")
	webReplicas := flag.Int("web-replicas", 0, "carebridge web replicas serving the secure chat phase's pages (PostgreSQL only; 0: the bridge serves them)")
	outboxConcurrency := flag.Int("outbox-concurrency", 0, "the bridge's outbox.concurrency, how many conversations' texts are at Twilio at once (0: the bridge's default)")
	rounds := flag.Int("rounds", 1, "how often each concurrency's phases run, in turn (baseline, outbound, baseline, ...); above 1 the report takes each phase's median round, so that a machine whose pace drifts between phases weighs less")
	hang := flag.Duration("hang", 12*time.Second, "how long each send to the head-of-line phase's hung conversation waits at the fake Twilio")
	flag.BoolVar(&keepFolders, "keep", false, "keep each run's folders (the bridge's and the homeserver's logs and databases) and print where they are")
	flag.Parse()
	if *pprofDir != "" {
		if err := os.MkdirAll(*pprofDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}

	want := map[string]bool{}
	for _, f := range strings.Split(*measure, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allPhases, f) && !slices.Contains(diagnosticPhases, f) {
			fmt.Fprintf(os.Stderr, "bench: -phases takes %s (and, to diagnose, %s), not %q\n",
				strings.Join(allPhases, ","), strings.Join(diagnosticPhases, ","), f)
			os.Exit(2)
		}
		want[f] = true
	}
	if *twilioLatency < 0 || *hang <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -twilio-latency wants 0 or more and -hang more than 0, such as 200ms and 12s")
		os.Exit(2)
	}
	if *rounds < 1 || *rounds > 99 {
		fmt.Fprintln(os.Stderr, "bench: -rounds wants 1 to 99")
		os.Exit(2)
	}
	if *outboxConcurrency < 0 || *outboxConcurrency > 256 {
		fmt.Fprintln(os.Stderr, "bench: -outbox-concurrency wants 1 to 256, or 0 for the bridge's default")
		os.Exit(2)
	}
	if *conversations == 0 {
		delete(want, "scale")
	}
	if *sessions == 0 && *verifications == 0 {
		delete(want, "secure")
	}
	var measured []string
	for _, p := range append(slices.Clone(allPhases), diagnosticPhases...) {
		if want[p] {
			measured = append(measured, p)
		}
	}

	var conc []int
	for _, f := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "bench: -c wants numbers such as 1,8,32, not %q\n", f)
			os.Exit(2)
		}
		conc = append(conc, c)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	res := results{Started: time.Now().UTC(), N: *n, Patients: *patients, Concurrency: conc, Measured: measured, StatusEvents: *statusEvents,
		CPUs: runtime.NumCPU(), LoadAvg: strings.TrimSpace(string(load)), Note: seenNote,
		TwilioLatencyMS: ms(*twilioLatency), HangSeconds: hang.Seconds(), OutboxConcurrency: *outboxConcurrency, RoundCount: *rounds}

	ctx := context.Background()
	stopOnSignal()
	for _, kind := range strings.Split(*dbs, ",") {
		kind = strings.TrimSpace(kind)
		r := run{DB: kind}
		if addr := postgresAddr(); kind == "postgres" && os.Getenv("CAREBRIDGE_TEST_POSTGRES") == "" && !reachable(addr) {
			r.Skipped = "PostgreSQL is not reachable on " + addr + " (make deps starts the test cluster; or set CAREBRIDGE_TEST_POSTGRES)"
			note("[%s] skipped: %s", kind, r.Skipped)
			res.Runs = append(res.Runs, r)
			continue
		}
		tb := newBenchTB(kind)
		current.Store(tb)
		skipped, err := guard(tb, func() {
			s := startSystem(ctx, tb, kind, *patients, bridgeSettings{Pprof: *pprofDir != "", StatusEvents: *statusEvents,
				TwilioLatency: *twilioLatency, OutboxConcurrency: *outboxConcurrency})
			var prof *profiler
			if *pprofDir != "" {
				prof = &profiler{dir: *pprofDir, base: s.metricsURL, kind: kind}
			}
			steps := []struct {
				name string
				run  func(context.Context, int, int) (phase, error)
			}{{"baseline", s.baselineRun}, {"stopped", s.stoppedBridge}, {"inbound", s.inbound}, {"outbound", s.outbound},
				{"headofline", func(ctx context.Context, n, c int) (phase, error) { return s.headOfLine(ctx, n, c, *hang) }}}
			for _, c := range conc {
				for round := 1; round <= *rounds; round++ {
					for _, step := range steps {
						if !want[step.name] {
							continue
						}
						name := fmt.Sprintf("%s-c%d", step.name, c)
						if *rounds > 1 {
							name += fmt.Sprintf("-round%d", round)
						}
						stop := prof.profile(ctx, name)
						ph, err := step.run(ctx, *n, c)
						stop()
						if err != nil {
							tb.Fatalf("%s at concurrency %d: %v", ph.Name, c, err)
						}
						if *rounds > 1 {
							ph.Round = round
						}
						note("[%s] %s c=%d%s: %.1f msg/s, answer p99 %.1f ms, seen p50 %.1f ms",
							kind, ph.Name, c, roundLabel(ph.Round), ph.Throughput, ph.Answer.P99, ph.Seen.P50)
						r.Phases = append(r.Phases, ph)
					}
				}
			}
			if *rounds > 1 {
				r.Rounds, r.Phases = r.Phases, medianRounds(r.Phases)
			}
			if want["scale"] {
				stop := prof.profile(ctx, "scale")
				sc, err := s.scale(ctx, *conversations, *n)
				stop()
				if err != nil {
					tb.Fatalf("scale: %v", err)
				}
				r.Scale = sc
			}
			// After the scale phase, so that the bridge's memory is measured with its
			// conversations in the database, as the target asks.
			if want["secure"] {
				if err := s.startWebReplicas(tb, *webReplicas); err != nil {
					tb.Fatalf("secure chat: %v", err)
				}
				stop := prof.profile(ctx, "secure")
				sec, err := s.secure(ctx, *verifications, *sessions, r.Scale != nil)
				stop()
				if err != nil {
					tb.Fatalf("secure chat: %v", err)
				}
				r.Secure = sec
			}
		})
		r.Skipped = skipped
		if err != nil {
			r.Error = err.Error()
			note("[%s] failed: %v", kind, err)
		}
		res.Runs = append(res.Runs, r)
	}
	res.Targets = checkTargets(res.Runs, conc)
	printReport(os.Stdout, res)
	if err := writeJSON(*out, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// current is the run in progress, whose cleanups an interrupt runs: Dendrite and the
// bridge run in their own process groups and would outlive the bench.
var current atomic.Pointer[benchTB]

func stopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		note("interrupted: stopping the homeserver and the bridge")
		if tb := current.Load(); tb != nil {
			tb.runCleanups()
		}
		os.Exit(130)
	}()
}

// postgresAddr is where internal/testenv creates its PostgreSQL databases: the test
// cluster that make deps starts (CAREBRIDGE_TEST_PG_PORT, 54329 by default).
func postgresAddr() string {
	return "127.0.0.1:" + cmp.Or(os.Getenv("CAREBRIDGE_TEST_PG_PORT"), "54329")
}

func reachable(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func writeJSON(dir string, res results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to make %s: %w", dir, err)
	}
	path := filepath.Join(dir, res.Started.Format("20060102T150405Z")+".json")
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err = os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write results: %w", err)
	}
	fmt.Printf("\nResults written to %s\n", path)
	return nil
}
