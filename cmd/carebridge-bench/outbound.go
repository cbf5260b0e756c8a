package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/carebridge/carebridge/internal/testenv"
)

// hung is the head-of-line phase's conversation whose every send waited at Twilio.
type hung struct {
	Patient int `json:"patient"`
	Texts   int `json:"texts"`
	// HangSeconds is how long each of its sends waited at Twilio while the others were
	// measured; FirstSeconds its first text from the staff send to Twilio.
	HangSeconds  float64 `json:"hang_s"`
	FirstSeconds float64 `json:"first_s"`
	// DrainSeconds is from lifting the hang (once the others were all at Twilio) until
	// its last text was at Twilio.
	DrainSeconds float64 `json:"drain_s"`
}

// staffText is one staff text of a phase: its room (an index into s.rooms) and body.
// Measured texts make the phase's figures; the others (a hung conversation's) are only
// waited for.
type staffText struct {
	room     int
	body     string
	measured bool
}

// outbound sends n staff texts into the patients' rooms in turn, c at a time, timed until
// the fake Twilio receives each as an SMS.
func (s *system) outbound(ctx context.Context, n, c int) (phase, error) {
	texts := make([]staffText, n)
	for i := range texts {
		texts[i] = staffText{room: i % len(s.rooms), body: fmt.Sprintf("Reply c%d #%d: please take your reading again tomorrow", c, i), measured: true}
	}
	return s.staffPhase(ctx, "outbound", c, texts, nil)
}

// headOfLine is outbound with the first patient's sends hanging at Twilio for `hang`
// each: the staff texts of the other conversations are measured, and with the outbox
// they should reach Twilio at Twilio's pace, not after the hang. Once they have, the
// hang is lifted and the hung conversation's texts are waited for.
func (s *system) headOfLine(ctx context.Context, n, c int, hang time.Duration) (phase, error) {
	if len(s.rooms) < 2 {
		return phase{Name: "headofline", Concurrency: c}, fmt.Errorf("the head-of-line phase needs at least 2 patients")
	}
	texts := make([]staffText, n)
	for i := range texts {
		room := i % len(s.rooms)
		if room == 0 {
			texts[i] = staffText{room: room, body: fmt.Sprintf("Hung c%d #%d: your results are ready", c, i)}
		} else {
			texts[i] = staffText{room: room, body: fmt.Sprintf("Beside c%d #%d: please take your reading again tomorrow", c, i), measured: true}
		}
	}
	patient := s.patients[0]
	s.fake.HangSends(patient, hang)
	defer s.fake.HangSends(patient, 0)
	ph, err := s.staffPhase(ctx, "headofline", c, texts, func() { s.fake.HangSends(patient, 0) })
	if ph.Hung != nil {
		ph.Hung.Patient, ph.Hung.HangSeconds = 0, hang.Seconds()
	}
	return ph, err
}

// staffPhase sends texts, c at a time, and times each measured one from the staff send
// to the fake Twilio receiving it. lift, if set, is called once every measured text is
// at Twilio; the phase then waits for the rest and describes them in ph.Hung.
func (s *system) staffPhase(ctx context.Context, name string, c int, texts []staffText, lift func()) (phase, error) {
	measured := 0
	for _, t := range texts {
		if t.measured {
			measured++
		}
	}
	ph := phase{Name: name, Concurrency: c, N: measured}
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout(len(texts)))
	defer cancel()
	starts := make(map[string]time.Time, len(texts))
	answered := make(map[string]time.Time, len(texts))
	var mu sync.Mutex
	answers := make([]time.Duration, 0, measured)
	prog := startProgress(fmt.Sprintf("[%s] %s c=%d", s.kind, name, c), len(texts))
	defer prog.end()
	s.staff.Mu.Lock()
	statusMark := s.staff.statusEvents
	s.staff.Mu.Unlock()
	fakeMark := len(s.fake.Messages())
	before := s.mark()
	begin := time.Now()
	err := parallel(c, len(texts), func(i int) error {
		t := texts[i]
		start := time.Now()
		mu.Lock()
		starts[t.body] = start
		mu.Unlock()
		_, err := s.staff.send(ctx, s.rooms[t.room], t.body)
		mu.Lock()
		answered[t.body] = time.Now()
		if t.measured {
			answers = append(answers, answered[t.body].Sub(start))
		}
		mu.Unlock()
		prog.sent.Add(1)
		return err
	})
	if err != nil {
		return ph, err
	}

	// received is when each text reached Twilio; relay mode signs staff texts
	// ("nurse: <body>"), so a body is found by its text.
	received := map[string]time.Time{}
	dups := 0
	scanned := fakeMark
	arrived := func(want func(staffText) bool) func([]testenv.FakeMessage) bool {
		return func(msgs []testenv.FakeMessage) bool {
			for _, m := range msgs[scanned:] {
				body := m.Body
				if b, ok := strings.CutPrefix(body, "nurse: "); ok {
					body = b
				}
				if _, sent := starts[body]; !sent {
					continue
				}
				if _, again := received[body]; again {
					dups++
				} else {
					received[body] = m.ReceivedAt
				}
			}
			scanned = len(msgs)
			got, all := 0, 0
			for _, t := range texts {
				if want(t) {
					all++
					if _, ok := received[t.body]; ok {
						got++
					}
				}
			}
			prog.seen.Store(int64(len(received)))
			return got == all
		}
	}
	isMeasured := func(t staffText) bool { return t.measured }
	if err = waitFake(ctx, s.fake, arrived(isMeasured)); err != nil {
		return ph, fmt.Errorf("%d of %d staff texts reached Twilio: %w", len(received), measured, err)
	}
	var seen, afterAnswer []time.Duration
	var last time.Time
	for _, t := range texts {
		if at, ok := received[t.body]; ok && t.measured {
			seen = append(seen, at.Sub(starts[t.body]))
			afterAnswer = append(afterAnswer, max(0, at.Sub(answered[t.body])))
			last = latest(last, at)
		}
	}
	s.finish(&ph, answers, seen, begin, last, before)
	d := summarise(afterAnswer)
	ph.AfterAnswer = &d

	if lift != nil {
		lift()
		lifted := time.Now()
		if err = waitFake(ctx, s.fake, arrived(func(staffText) bool { return true })); err != nil {
			return ph, fmt.Errorf("the hung conversation's texts did not reach Twilio once the hang was lifted (%d of %d texts there): %w",
				len(received), len(texts), err)
		}
		h := &hung{}
		var first, lastHung time.Time
		for _, t := range texts {
			if t.measured {
				continue
			}
			h.Texts++
			at := received[t.body]
			if first.IsZero() || starts[t.body].Before(first) {
				first = starts[t.body]
				h.FirstSeconds = at.Sub(first).Seconds()
			}
			lastHung = latest(lastHung, at)
		}
		h.DrainSeconds = max(0, lastHung.Sub(lifted).Seconds())
		ph.Hung = h
	}
	perText := s.statusEventsSince(ctx, statusMark) / float64(len(texts))
	ph.StatusEventsPerText = &perText
	ph.Duplicates = dups
	return ph, nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// statusEventsSince counts the bridge's status events in the rooms since mark, once no
// new one has come for two seconds (Twilio's delivery callbacks come after its answer).
func (s *system) statusEventsSince(ctx context.Context, mark int) float64 {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s.staff.Mu.Lock()
	count := s.staff.statusEvents
	s.staff.Mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return float64(count - mark)
		case <-time.After(2 * time.Second):
		}
		s.staff.Mu.Lock()
		now := s.staff.statusEvents
		s.staff.Mu.Unlock()
		if now == count {
			return float64(count - mark)
		}
		count = now
	}
}
