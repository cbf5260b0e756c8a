package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

// phase is one measured run: n messages at a concurrency.
type phase struct {
	Name        string `json:"name"` // baseline, stopped, inbound, outbound, headofline
	Concurrency int    `json:"concurrency"`
	N           int    `json:"n"`
	// Round is which round of -rounds measured it (0: the only one).
	Round int `json:"round,omitempty"`
	// Answer is the time to the HTTP answer: the bridge's webhook answer (inbound) or
	// the homeserver's answer to the send (outbound, baseline).
	Answer dist `json:"answer"`
	// Seen is from the start of the request until the other side has it: the nurse's
	// /sync (inbound, baseline) or the fake Twilio (outbound, headofline: the texts of
	// the conversations that were not hung).
	Seen dist `json:"seen"`
	// Throughput is messages per second from the first request to the last seen.
	Throughput float64 `json:"throughput_per_s"`
	Seconds    float64 `json:"seconds"`
	// Bridge process: resident memory at the end and CPU used, as a share of one core.
	BridgeRSSMB  float64 `json:"bridge_rss_mb"`
	BridgeCPUPct float64 `json:"bridge_cpu_pct"`
	// CPUByCommand is every process's CPU during the phase by command name, as a share
	// of one core (1% and over); MachineCPUPct the machine's busy share (100 per core).
	CPUByCommand  map[string]float64 `json:"cpu_by_command_pct,omitempty"`
	MachineCPUPct float64            `json:"machine_cpu_pct,omitempty"`
	// AfterAnswer is from the homeserver's answer to the staff send until the fake Twilio
	// had the text (outbound, headofline): the bridge's part and Twilio's latency, without
	// the homeserver's.
	AfterAnswer *dist `json:"after_answer,omitempty"`
	// StatusEventsPerText is how many com.beeper.message_send_status room events the
	// bridge posted per staff text (outbound, headofline).
	StatusEventsPerText *float64 `json:"status_events_per_text,omitempty"`
	// Duplicates is how many staff texts reached Twilio more than once.
	Duplicates int `json:"duplicates,omitempty"`
	// Hung is the conversation whose sends hung (headofline).
	Hung *hung `json:"hung,omitempty"`
}

func phaseTimeout(n int) time.Duration { return 2*time.Minute + time.Duration(n)*200*time.Millisecond }

// finish fills a phase's figures: its n items ran from begin until the last was seen.
func (s *system) finish(ph *phase, answers, seen []time.Duration, begin, last time.Time, before phaseMark) {
	ph.Answer, ph.Seen = summarise(answers), summarise(seen)
	ph.Seconds = last.Sub(begin).Seconds()
	ph.Throughput = float64(ph.N) / ph.Seconds
	s.measureBridge(ph, before.bridge, begin)
	ph.CPUByCommand, ph.MachineCPUPct = readMachineCPU().since(before.machine, time.Since(begin))
}

// phaseMark is the bridge's and the machine's CPU when a phase begins.
type phaseMark struct {
	bridge  procStat
	machine machineCPU
}

func (s *system) mark() phaseMark {
	bridge, _ := readProc(s.br.Pid())
	return phaseMark{bridge: bridge, machine: readMachineCPU()}
}

// measureBridge adds the bridge's RSS and CPU share over [from, now] to p.
func (s *system) measureBridge(p *phase, before procStat, from time.Time) {
	after, err := readProc(s.br.Pid())
	if err != nil {
		return
	}
	p.BridgeRSSMB = float64(after.RSSBytes) / (1 << 20)
	if wall := time.Since(from); wall > 0 {
		p.BridgeCPUPct = 100 * float64(after.CPU-before.CPU) / float64(wall)
	}
}

// inbound posts n signed webhooks from the patients in turn, c at a time, and times the
// webhook's answer and the nurse's /sync seeing the text (an encrypted event from the
// patient's ghost; a patient's k-th text of the phase is the k-th such event in the room).
func (s *system) inbound(ctx context.Context, n, c int) (phase, error) {
	ph := phase{Name: "inbound", Concurrency: c, N: n}
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout(n))
	defer cancel()
	mark := s.staff.arrivalCounts()
	var mu sync.Mutex
	starts := make([][]time.Time, len(s.patients))
	answers := make([]time.Duration, n)
	prog := startProgress(fmt.Sprintf("[%s] inbound c=%d", s.kind, c), n)
	defer prog.end()
	go s.countSeen(ctx, prog, func() int {
		total := 0
		for i, room := range s.rooms {
			total += min(len(s.staff.arrivals[room])-mark[room], len(starts[i]))
		}
		return total
	}, &mu)
	before := s.mark()
	begin := time.Now()
	err := parallel(c, n, func(i int) error {
		p := i % len(s.patients)
		body := fmt.Sprintf("Bench c%d #%d: my blood pressure was 140 over 90 this morning", c, i)
		mu.Lock()
		start := time.Now()
		starts[p] = append(starts[p], start)
		mu.Unlock()
		res, err := s.fake.SendInbound(ctx, s.patients[p], clinicPhone, body)
		answers[i] = time.Since(start)
		prog.sent.Add(1)
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("webhook answered HTTP %d: %s", res.StatusCode, res.Body)
		}
		return err
	})
	if err != nil {
		return ph, err
	}
	err = s.staff.Wait(ctx, "the bridged texts", func() bool {
		for i, room := range s.rooms {
			if len(s.staff.arrivals[room])-mark[room] < len(starts[i]) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return ph, err
	}
	var seen []time.Duration
	var last time.Time
	s.staff.Mu.Lock()
	for i, room := range s.rooms {
		got := s.staff.arrivals[room][mark[room]:]
		for k, start := range starts[i] {
			seen = append(seen, got[k].Sub(start))
			if got[k].After(last) {
				last = got[k]
			}
		}
	}
	s.staff.Mu.Unlock()
	s.finish(&ph, answers, seen, begin, last, before)
	return ph, nil
}

// baseline is the homeserver's own limit for the same work: the nurse sends n encrypted
// texts into rooms without the bridge, c at a time, timed until her /sync echoes each.
func (s *system) baselineRun(ctx context.Context, n, c int) (phase, error) {
	return s.echoRun(ctx, "baseline", s.baseline, n, c)
}

// stoppedBridge is the baseline's work in the bridge's rooms with the bridge process
// stopped (SIGSTOP): what the homeserver itself does for a staff text in a room with the
// patient's ghost and the bridge bot, without the bridge's or its database's CPU beside
// it. The texts reach Twilio once the bridge goes on (SIGCONT), before the next phase.
func (s *system) stoppedBridge(ctx context.Context, n, c int) (phase, error) {
	pid := s.br.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return phase{Name: "stopped", Concurrency: c}, err
	}
	fakeMark := len(s.fake.Messages())
	ph, err := s.echoRun(ctx, "stopped", s.rooms, n, c)
	if contErr := syscall.Kill(pid, syscall.SIGCONT); err == nil && contErr != nil {
		err = contErr
	}
	if err != nil {
		return ph, err
	}
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout(n))
	defer cancel()
	if err = waitFake(ctx, s.fake, func(msgs []testenv.FakeMessage) bool { return len(msgs)-fakeMark >= n }); err != nil {
		return ph, fmt.Errorf("the texts sent while the bridge was stopped did not all reach Twilio after it went on: %w", err)
	}
	return ph, nil
}

// echoRun has the nurse send n encrypted texts into rooms, c at a time, timed until her
// /sync echoes each.
func (s *system) echoRun(ctx context.Context, name string, rooms []id.RoomID, n, c int) (phase, error) {
	ph := phase{Name: name, Concurrency: c, N: n}
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout(n))
	defer cancel()
	starts := make([]time.Time, n)
	events := make([]id.EventID, n)
	answers := make([]time.Duration, n)
	prog := startProgress(fmt.Sprintf("[%s] %s c=%d", s.kind, name, c), n)
	defer prog.end()
	before := s.mark()
	begin := time.Now()
	err := parallel(c, n, func(i int) error {
		room := rooms[i%len(rooms)]
		starts[i] = time.Now()
		evt, err := s.staff.send(ctx, room, fmt.Sprintf("%s c%d #%d: my blood pressure was 140 over 90 this morning", name, c, i))
		answers[i] = time.Since(starts[i])
		events[i] = evt
		prog.sent.Add(1)
		return err
	})
	if err != nil {
		return ph, err
	}
	err = s.staff.Wait(ctx, "the "+name+" echoes", func() bool {
		got := 0
		for _, evt := range events {
			if _, ok := s.staff.ownSeen[evt]; ok {
				got++
			}
		}
		prog.seen.Store(int64(got))
		return got == n
	})
	if err != nil {
		return ph, err
	}
	var seen []time.Duration
	var last time.Time
	s.staff.Mu.Lock()
	for i, evt := range events {
		at := s.staff.ownSeen[evt]
		seen = append(seen, at.Sub(starts[i]))
		if at.After(last) {
			last = at
		}
	}
	s.staff.Mu.Unlock()
	s.finish(&ph, answers, seen, begin, last, before)
	return ph, nil
}

// countSeen keeps the progress line's "seen" up to date while a phase runs.
func (s *system) countSeen(ctx context.Context, prog *progress, count func() int, mu *sync.Mutex) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-prog.stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
		mu.Lock()
		s.staff.Mu.Lock()
		prog.seen.Store(int64(count()))
		s.staff.Mu.Unlock()
		mu.Unlock()
	}
}
