package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/testenv"
)

const (
	faultPatients   = 10
	faultPerPatient = 20
	faultTexts      = faultPatients * faultPerPatient
	// faultSenders post webhooks at once; each owns some patients and sends their texts
	// in order, so every patient's texts reach the bridge in the order they were typed.
	faultSenders = 4
	// faultSendPause is each sender's pause between texts: about 10 texts a second in
	// all, so that every outage happens while texts keep coming.
	faultSendPause = 400 * time.Millisecond
	dendriteOutage = 10 * time.Second
	// faultSettle is how long to keep watching after everything arrived, for late
	// duplicates (the inbound queue's longest backoff is 5 s in tests).
	faultSettle = 6 * time.Second
	// faultStall ends a wait in which no expected text arrived: longer than the Matrix
	// client's own retries of one request (4 + 8 + 16 s).
	faultStall = 45 * time.Second
)

// TestFaultInbound sends 200 texts from 10 patients while the homeserver is stopped
// for 10 s and, later, the bridge is killed with SIGKILL and restarted. Every text that
// the bridge answered with 200 must reach the nurse exactly once, encrypted, in each
// patient's order; texts refused while the bridge was down are posted again after the
// restart with the same MessageSid, as an operator re-driving Twilio's failed webhooks
// would, and some accepted ones are posted twice to prove de-duplication.
func TestFaultInbound(t *testing.T) { eachHomeserver(t, runFaultInbound) }

// TestFaultOutbound has a nurse send 100 replies while Twilio answers every third send
// with 503: each reply must reach Twilio exactly once, in the order she sent them.
func TestFaultOutbound(t *testing.T) { eachDB(t, runFaultOutbound) }

// faultText is one patient text of TestFaultInbound.
type faultText struct {
	patient, seq int
	from, body   string
	// res is the last webhook call: its Params and MessageSid are what a resend repeats.
	res testenv.InboundResult
}

func faultPatient(p int) string { return fmt.Sprintf("+1555123450%d", p) }

// inboundSenders plays Twilio for the patients: faultSenders goroutines post the
// texts, one per token the test releases, so the test decides how many are sent
// before each fault.
type inboundSenders struct {
	t      *testing.T
	fake   *testenv.FakeTwilio
	plan   [faultSenders][]*faultText
	tokens chan struct{}
	// allowed is how many tokens were released; only the test goroutine uses it.
	allowed int
	sent    atomic.Int64
	// bridgeDown is set just before the bridge is killed and cleared once it answers
	// again: a failed webhook call in between is a text refused while down.
	bridgeDown atomic.Bool

	mu       sync.Mutex
	order    []*faultText // in the order their first call ended
	firstTry []*faultText // answered 200 on the first call
	rejected []*faultText // refused (no answer) while the bridge was down
	lastCall time.Time    // when the latest first call ended
}

func newInboundSenders(t *testing.T, fake *testenv.FakeTwilio) (*inboundSenders, map[string]*faultText) {
	s := &inboundSenders{t: t, fake: fake, tokens: make(chan struct{}, faultTexts)}
	all := map[string]*faultText{}
	for seq := 1; seq <= faultPerPatient; seq++ {
		for p := range faultPatients {
			txt := &faultText{patient: p, seq: seq, from: faultPatient(p), body: fmt.Sprintf("patient %d message %02d", p, seq)}
			s.plan[p%faultSenders] = append(s.plan[p%faultSenders], txt)
			all[txt.body] = txt
		}
	}
	return s, all
}

// allow lets the senders go on until total texts have been sent.
func (s *inboundSenders) allow(total int) {
	for ; s.allowed < total; s.allowed++ {
		s.tokens <- struct{}{}
	}
}

func (s *inboundSenders) run(ctx context.Context, g int) {
	for _, txt := range s.plan[g] {
		select {
		case <-ctx.Done():
			return
		case <-s.tokens:
		}
		res, err := s.fake.SendInbound(ctx, txt.from, clinicPhone, txt.body)
		s.mu.Lock()
		txt.res = res
		s.order = append(s.order, txt)
		s.lastCall = time.Now()
		switch {
		case err != nil && s.bridgeDown.Load():
			s.rejected = append(s.rejected, txt)
		case err != nil:
			s.t.Errorf("webhook of %q failed while the bridge was up: %v", txt.body, err)
		case res.StatusCode != http.StatusOK:
			s.t.Errorf("webhook of %q answered %d, want 200 (stored): %s", txt.body, res.StatusCode, res.Body)
		default:
			s.firstTry = append(s.firstTry, txt)
		}
		s.mu.Unlock()
		s.sent.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(faultSendPause):
		}
	}
}

// waitSent waits until n texts have had their first webhook call.
func (s *inboundSenders) waitSent(ctx context.Context, n int) error {
	for s.sent.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d texts sent: %w", s.sent.Load(), n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// sentSoFar returns the bodies whose first webhook call has ended.
func (s *inboundSenders) sentSoFar() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.order))
	for i, txt := range s.order {
		out[i] = txt.body
	}
	return out
}

func runFaultInbound(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)

	senders, want := newInboundSenders(t, e.fake)
	var wg sync.WaitGroup
	for g := range faultSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			senders.run(ctx, g)
		}()
	}
	started := time.Now()

	// Phase A: the homeserver goes away after a third of the texts, once every
	// conversation has its room and the nurse is in it (her client cannot join during
	// the outage). Webhooks still answer 200: the texts are stored and the queue retries.
	senders.allow(faultTexts / 3)
	require.NoError(t, senders.waitSent(ctx, faultTexts/3))
	require.NoError(t, waitEachPatientSeen(ctx, nurse, want), "every conversation reached the nurse before the outage")
	senders.allow(faultTexts / 2)
	seenBeforeOutage := map[string]bool{}
	for _, m := range nurse.Messages() {
		seenBeforeOutage[m.Body] = true
	}
	stoppingAt := time.Now()
	e.hs.Stop()
	stoppedAt := time.Now()
	sentAtStop := senders.sent.Load()
	require.NoError(t, senders.waitSent(ctx, faultTexts/2))
	select {
	case <-ctx.Done():
		t.Fatal("test timed out during the homeserver outage")
	case <-time.After(time.Until(stoppedAt.Add(dendriteOutage))):
	}
	e.hs.Restart()
	dendriteUpAt := time.Now()
	duringOutage := senders.sent.Load() - sentAtStop
	beforeDendriteUp := senders.sentSoFar()
	// Texts keep coming while the backlog drains; the next fault waits for the drain,
	// so that each recovery is timed on its own.
	senders.allow(faultTexts * 2 / 3)
	lostByDendrite := 0
	if err := waitBodiesSeen(ctx, nurse, want, beforeDendriteUp); err != nil {
		// Dendrite (its message queue in memory, as the tests run it) can lose an event
		// it acknowledged just before it stopped (internal/testenv's
		// TestAgentSeesEverythingThroughRestart logs it when it happens; CI met it once
		// here in 2026-12). The bridge
		// did its part for such a text (the homeserver answered 200 with an event ID),
		// so it is set apart, with the evidence, and every other text must arrive.
		lost := lostByHomeserver(t, e, nurse, want, beforeDendriteUp, stoppingAt.Add(-2*time.Second), stoppedAt)
		if len(lost) > 0 && !strings.HasPrefix(kind, testenv.HomeserverSynapse) && len(lost) <= 2 {
			for _, b := range lost {
				delete(want, b)
			}
			lostByDendrite = len(lost)
			err = waitBodiesSeen(ctx, nurse, want, slices.DeleteFunc(slices.Clone(beforeDendriteUp), func(b string) bool { return want[b] == nil }))
		}
		if err != nil {
			diagnoseMissing(t, e, nurse, want, beforeDendriteUp)
			require.NoError(t, err, "the outage's backlog reached the nurse")
		}
	}
	dendriteDrainedAt := time.Now()

	// Phase B: the bridge is killed after two thirds, while texts keep coming. Twilio
	// does not retry an inbound webhook that got no answer (it logs error 11200), so
	// those are posted again once the bridge is back, with the same MessageSid.
	require.NoError(t, senders.waitSent(ctx, faultTexts*2/3))
	senders.allow(faultTexts * 3 / 4)
	senders.bridgeDown.Store(true)
	seenBeforeKill := map[string]bool{}
	for _, m := range nurse.Messages() {
		seenBeforeKill[m.Body] = true
	}
	e.br.Kill()
	killedAt := time.Now()
	require.NoError(t, senders.waitSent(ctx, faultTexts*3/4))
	downFor := time.Since(killedAt)
	e.br.Restart()
	bridgeUpAt := time.Now()
	senders.bridgeDown.Store(false)
	beforeBridgeUp := senders.sentSoFar()

	senders.mu.Lock()
	rejected := slices.Clone(senders.rejected)
	probes := []*faultText{senders.firstTry[0], senders.firstTry[len(senders.firstTry)/3],
		senders.firstTry[len(senders.firstTry)/2], senders.firstTry[len(senders.firstTry)-1]}
	senders.mu.Unlock()
	// In the order they were sent, before any later text: each patient's order holds.
	refusedAfterRestart := 0
	for _, txt := range rejected {
		res, err := e.fake.ResendInbound(ctx, txt.res)
		require.NoError(t, err, "re-posting %q after the restart", txt.body)
		if res.StatusCode != http.StatusOK {
			// Twilio does not retry a 4xx: the patient's text is lost.
			t.Errorf("re-posting %q (%s) right after the restart was answered %d %q: the text is lost",
				txt.body, txt.res.MessageSID, res.StatusCode, strings.TrimSpace(res.Body))
			refusedAfterRestart++
			delete(want, txt.body)
		}
	}
	// Twilio retrying webhooks that were answered: stored once, delivered once.
	for _, txt := range probes {
		res, err := e.fake.ResendInbound(ctx, txt.res)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	}
	senders.allow(faultTexts)
	wg.Wait()
	require.NoError(t, ctx.Err(), "sending did not finish in time")
	allSentAt := senders.lastCall

	// Everything reaches the nurse.
	if err := waitBodiesSeen(ctx, nurse, want, slices.Collect(maps.Keys(want))); err != nil {
		diagnoseMissing(t, e, nurse, want, slices.Collect(maps.Keys(want)))
		pending, _ := pendingReceipts(e.db)
		t.Fatalf("%v\npending receipts: %d", err, pending)
	}
	require.Eventually(t, func() bool {
		n, err := pendingReceipts(e.db)
		return err == nil && n == 0
	}, 30*time.Second, 200*time.Millisecond,
		"every receipt is marked delivered")
	time.Sleep(faultSettle)

	// Each text exactly once, in each patient's order, encrypted, from its ghost, in one
	// room per patient.
	msgs := nurse.Messages()
	count := map[string]int{}
	lastSeq := map[int]int{}
	roomOf := map[int]string{}
	firstSeen := map[string]testenv.AgentMessage{}
	// A text whose send into the room overlapped a crash (the homeserver's, or the
	// bridge's SIGKILL) is the one at risk of a second copy; those are counted apart.
	outageBacklog := map[string]bool{}
	for _, b := range beforeDendriteUp {
		outageBacklog[b] = !seenBeforeOutage[b]
	}
	for _, b := range beforeBridgeUp {
		outageBacklog[b] = outageBacklog[b] || !seenBeforeKill[b]
	}
	duplicates, outageDuplicates, other, backfilled := 0, 0, 0, 0
	for _, m := range msgs {
		txt := want[m.Body]
		if txt == nil {
			other++
			continue
		}
		count[m.Body]++
		if count[m.Body] > 1 {
			duplicates++
			if outageBacklog[m.Body] {
				outageDuplicates++
			}
			t.Errorf("%q delivered %d times (event %s; in a crash window: %v)", m.Body, count[m.Body], m.EventID, outageBacklog[m.Body])
			continue
		}
		firstSeen[m.Body] = m
		assert.True(t, m.Encrypted, "%q arrived unencrypted", m.Body)
		assert.Equal(t, e.patientGhost(t, ctx, txt.from), m.Sender, m.Body)
		if room, ok := roomOf[txt.patient]; ok {
			assert.Equal(t, room, m.RoomID, "patient %d's texts are all in one room", txt.patient)
		} else {
			roomOf[txt.patient] = m.RoomID
		}
		// A message the client found by paging back arrives after later ones; the
		// room's own order (below) holds it to account.
		if m.Backfilled {
			backfilled++
			continue
		}
		if txt.seq <= lastSeq[txt.patient] {
			t.Errorf("patient %d: message %02d arrived after message %02d", txt.patient, txt.seq, lastSeq[txt.patient])
		}
		lastSeq[txt.patient] = max(lastSeq[txt.patient], txt.seq)
	}
	rooms := map[string]bool{}
	for _, r := range roomOf {
		rooms[r] = true
	}
	assert.Len(t, rooms, faultPatients, "one room per patient")
	assert.Len(t, count, faultTexts-refusedAfterRestart-lostByDendrite, "every text delivered")
	// The room timeline (server_ts) agrees with the arrival order.
	for p := range faultPatients {
		var prev int64
		for seq := 1; seq <= faultPerPatient; seq++ {
			m, ok := firstSeen[fmt.Sprintf("patient %d message %02d", p, seq)]
			if !ok {
				continue
			}
			assert.GreaterOrEqual(t, m.ServerTS, prev, "patient %d message %02d has an earlier server_ts than message %02d", p, seq, seq-1)
			prev = m.ServerTS
		}
	}
	// Each patient's texts are in the room in the order they were typed, as every client
	// shows them (/messages).
	reader := e.hs.Login(t, "nurse", "nurse-password-1")
	bodyOf := map[id.EventID]string{}
	for _, m := range msgs {
		bodyOf[id.EventID(m.EventID)] = m.Body
	}
	for p, roomID := range roomOf {
		timeline, err := roomTimeline(ctx, reader, id.RoomID(roomID))
		require.NoError(t, err)
		last := 0
		for _, evt := range timeline {
			txt := want[bodyOf[evt]]
			if txt == nil {
				continue
			}
			if txt.seq <= last {
				t.Errorf("patient %d: message %02d is after message %02d in the room", p, txt.seq, last)
			}
			last = max(last, txt.seq)
		}
	}

	// Figures for the report.
	lastSeen := func(bodies []string) time.Time {
		var last time.Time
		for _, b := range bodies {
			if m, ok := firstSeen[b]; ok && m.ReceivedAt().After(last) {
				last = m.ReceivedAt()
			}
		}
		return last
	}
	rejectedSIDs := map[string]bool{}
	for _, txt := range rejected {
		rejectedSIDs[txt.res.MessageSID] = true
	}
	logStats := scanBridgeLog(t, e.br.LogPath(), rejectedSIDs)
	t.Logf("[%s] inbound under faults: sent %d, accepted on first try %d, rejected while down %d (%d of them had been stored before the kill), "+
		"re-posted after answer %d (bridge log: %d repeats recognised), delivered %d distinct, duplicates %d (%d in crash windows), "+
		"other messages %d, undecryptable %d, delivery retries in bridge log %d, parts found already in the room on redelivery %d, "+
		"messages the nurse's client found by paging back %d",
		kind, faultTexts, len(senders.firstTry), len(rejected), logStats.repeatedRejected, len(probes), logStats.repeated,
		len(count), duplicates, outageDuplicates, other, len(nurse.Undecryptable()), logStats.deliveryRetries, logStats.foundInRoom,
		backfilled)
	t.Logf("[%s] homeserver down %v (%d texts sent meanwhile, %d homeserver requests retried by the bridge's Matrix client); "+
		"drain after it came back: %v (seen by the test after %v)",
		kind, dendriteUpAt.Sub(stoppedAt).Round(time.Millisecond), duringOutage, logStats.matrixRetries,
		lastSeen(beforeDendriteUp).Sub(dendriteUpAt).Round(time.Millisecond), dendriteDrainedAt.Sub(dendriteUpAt).Round(time.Millisecond))
	t.Logf("[%s] bridge killed, %v until restart began, restart took %v; drain after restart: %v",
		kind, downFor.Round(time.Millisecond), bridgeUpAt.Sub(killedAt.Add(downFor)).Round(time.Millisecond),
		lastSeen(beforeBridgeUp).Sub(bridgeUpAt).Round(time.Millisecond))
	t.Logf("[%s] total: sending %v, last text seen %v after the last webhook, whole run %v",
		kind, allSentAt.Sub(started).Round(time.Millisecond), lastSeen(slices.Collect(maps.Keys(want))).Sub(allSentAt).Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond))
}

// waitBodiesSeen waits until the nurse has seen each of the texts with these bodies. It
// gives up when none of them arrived for faultStall: a lost text fails the test in
// seconds rather than at the deadline.
func waitBodiesSeen(ctx context.Context, nurse *testenv.StaffAgent, all map[string]*faultText, bodies []string) error {
	wanted := map[string]bool{}
	for _, b := range bodies {
		wanted[b] = true
	}
	seen := map[string]bool{}
	lastProgress := time.Now()
	for {
		before := len(seen)
		for _, m := range nurse.Messages() {
			if wanted[m.Body] {
				seen[m.Body] = true
			}
		}
		if len(seen) == len(wanted) {
			return nil
		}
		if len(seen) > before {
			lastProgress = time.Now()
		}
		var err error
		if time.Since(lastProgress) > faultStall {
			err = fmt.Errorf("nothing new arrived for %v", faultStall)
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			var missing []string
			for _, b := range bodies {
				if !seen[b] {
					missing = append(missing, fmt.Sprintf("%q (%s)", b, all[b].res.MessageSID))
				}
			}
			return fmt.Errorf("the nurse saw %d of %d texts (%d undecryptable events); missing: %s: %w",
				len(seen), len(wanted), len(nurse.Undecryptable()), strings.Join(missing, ", "), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitEachPatientSeen waits until the nurse has seen a text of every patient.
func waitEachPatientSeen(ctx context.Context, nurse *testenv.StaffAgent, want map[string]*faultText) error {
	patients := map[int]bool{}
	_, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		if txt := want[m.Body]; txt != nil {
			patients[txt.patient] = true
		}
		return len(patients) == faultPatients
	})
	if err != nil {
		return fmt.Errorf("the nurse saw texts of %d of %d patients: %w", len(patients), faultPatients, err)
	}
	return nil
}

func runFaultOutbound(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	var err error

	const opening = "Hi, it's Maria again. Can I ask a few things about my new medication?"
	res, err := e.fake.SendInbound(ctx, patient, clinicPhone, opening)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.RoomID == roomID && m.Body == opening })
	require.NoError(t, err)

	// A Twilio incident: every third send is refused with 503 and nothing is created.
	e.fake.FailEveryNthSend(3)
	const replies = 100
	want := make([]string, replies)
	started := time.Now()
	for i := range replies {
		body := fmt.Sprintf("reply %03d", i+1)
		want[i] = "nurse: " + body
		_, _, err := nurse.Send(ctx, roomID, body)
		require.NoError(t, err, "sending %q", body)
	}
	typedIn := time.Since(started)

	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	got := map[string]bool{}
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		if m.To == patient && wanted[m.Body] {
			got[m.Body] = true
		}
		return len(got) == replies
	})
	require.NoError(t, err, "Twilio received %d of %d replies", len(got), replies)
	deliveredIn := time.Since(started)
	time.Sleep(faultSettle)

	var bodies []string
	for _, m := range e.fake.Messages() {
		if m.To == patient {
			bodies = append(bodies, m.Body)
		}
	}
	count := map[string]int{}
	duplicates := 0
	var order []string
	for _, b := range bodies {
		count[b]++
		if count[b] > 1 {
			duplicates++
			continue
		}
		order = append(order, b)
	}
	// A loaded homeserver can store one client send twice (Dendrite records a transaction
	// ID only once the send completes, and the client retries a slow one): each event in
	// the room must reach Twilio exactly once, so count the room's copies too.
	inRoom := map[string]int{}
	for _, m := range nurse.Messages() {
		if m.Sender == e.nurseID && m.RoomID == roomID {
			inRoom["nurse: "+m.Body]++
		}
	}
	matrixCopies := 0
	for _, w := range want {
		assert.Equal(t, max(inRoom[w], 1), count[w], "%q reaches Twilio once per event in the room (%d)", w, inRoom[w])
		matrixCopies += max(inRoom[w]-1, 0)
	}
	assert.Equal(t, want, order, "replies reach Twilio in the order the nurse sent them")
	assert.Len(t, bodies, replies+matrixCopies, "nothing else was sent")
	if matrixCopies > 0 {
		t.Logf("[%s] the homeserver stored %d of the nurse's sends twice; each copy was texted once", kind, matrixCopies)
	}

	logStats := scanBridgeLog(t, e.br.LogPath(), nil)
	failed := e.fake.FailedSends()
	assert.Equal(t, failed, logStats.retriedSends, "each 503 was followed by one more attempt of the same reply")
	assert.Zero(t, logStats.refusedSends, "no reply was given up on")
	t.Logf("[%s] outbound under 503s: sent %d, delivered %d distinct, duplicates %d, send requests %d, 503s answered %d, "+
		"replies that needed a retry (bridge log) %d, refused %d",
		kind, replies, len(order), duplicates, e.fake.SendAttempts(), failed, logStats.retriedSends, logStats.refusedSends)
	t.Logf("[%s] outbound timing: the nurse sent all %d in %v, Twilio had all of them after %v",
		kind, replies, typedIn.Round(time.Millisecond), deliveredIn.Round(time.Millisecond))
}

// bridgeLogStats are counts read from the bridge's JSON log.
type bridgeLogStats struct {
	deliveryRetries  int // failed attempts to put an inbound text into its room
	repeated         int // webhooks recognised as repeats of a stored text
	repeatedRejected int // repeats among the given SIDs: stored, but the answer was lost
	retriedSends     int // outbound texts that needed more than one attempt
	refusedSends     int // outbound texts Twilio refused for good
	matrixRetries    int // homeserver requests the Matrix client retried
	foundInRoom      int // message parts a redelivery found already in the room
}

func scanBridgeLog(t *testing.T, path string, sids map[string]bool) bridgeLogStats {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var st bridgeLogStats
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var line struct {
			Message    string `json:"message"`
			MessageSID string `json:"message_sid"`
			Attempts   int    `json:"attempts"`
			Attempt    int    `json:"attempt"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if strings.HasPrefix(line.Message, "Repeated inbound") {
			st.repeated++
			if sids[line.MessageSID] {
				st.repeatedRejected++
			}
		}
		switch line.Message {
		case "Failed to deliver inbound text into Matrix; will retry":
			st.deliveryRetries++
		case "Sent text":
			if line.Attempt > 1 {
				st.retriedSends += line.Attempt - 1
			}
		case "Text not sent":
			st.refusedSends++
		case "Request failed, retrying":
			st.matrixRetries++
		case "Message part is already in the room from an earlier attempt; not sending it again":
			st.foundInRoom++
		}
	}
	require.NoError(t, sc.Err())
	return st
}

// pendingReceipts counts stored inbound texts not yet marked delivered.
func pendingReceipts(spec testenv.DBSpec) (int, error) {
	driver := "postgres"
	if spec.Type != "postgres" {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, spec.URI)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT COUNT(*) FROM inbound_receipt WHERE state='pending'").Scan(&n)
	return n, err
}

// diagnoseMissing logs, for each text the nurse has not seen, how far it got, so that a
// failure tells a bridge fault from a homeserver's or the test client's: the bridge's
// inbound receipt (pending or delivered) and bridgev2's message row (the event the bridge
// believes it put into the room); whether the homeserver serves that event to clients
// (GET /event, and the room's timeline: /messages, which /sync shares; on Dendrite both
// come from its sync API, which can miss what its roomserver acknowledged); and the
// bridge's log lines of the text. A receipt still pending or no message row is the
// bridge's fault; a message row whose event the room lacks is the homeserver's; an event
// in the room the nurse never saw is her client's.
func diagnoseMissing(t *testing.T, e *env, nurse *testenv.StaffAgent, all map[string]*faultText, bodies []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range nurse.Messages() {
		seen[m.Body] = true
	}
	var missing []*faultText
	for _, b := range bodies {
		if !seen[b] && all[b] != nil {
			missing = append(missing, all[b])
		}
	}
	if len(missing) == 0 {
		return
	}
	driver, ph := "postgres", "$1"
	if e.db.Type != "postgres" {
		driver, ph = "sqlite3", "?1"
	}
	db, err := sql.Open(driver, e.db.URI)
	if err != nil {
		t.Logf("diagnosis: cannot open the bridge database: %v", err)
		return
	}
	defer db.Close()
	var client *mautrix.Client
	if e.hs.Running() {
		client = e.hs.Login(t, "nurse", "nurse-password-1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, txt := range missing {
		sid := txt.res.MessageSID
		var state, lastError string
		var attempts int
		var deliveredAt sql.NullInt64
		err := db.QueryRowContext(ctx, strings.ReplaceAll(
			"SELECT state, attempts, last_error, delivered_at FROM inbound_receipt WHERE message_sid=$1", "$1", ph), sid).
			Scan(&state, &attempts, &lastError, &deliveredAt)
		receipt := fmt.Sprintf("state=%s attempts=%d last_error=%q delivered_at=%v", state, attempts, lastError, deliveredAt.Int64)
		if errors.Is(err, sql.ErrNoRows) {
			receipt = "none: the bridge never stored the text"
		} else if err != nil {
			receipt = "not readable: " + err.Error()
		}
		t.Logf("diagnosis of %q (%s): receipt %s", txt.body, sid, receipt)
		rows, err := db.QueryContext(ctx, strings.ReplaceAll(
			"SELECT m.part_id, m.mxid, p.mxid FROM message m JOIN portal p ON p.bridge_id=m.bridge_id AND p.id=m.room_id AND p.receiver=m.room_receiver WHERE m.id=$1",
			"$1", ph), sid)
		if err != nil {
			t.Logf("  message rows not readable: %v", err)
			continue
		}
		parts := 0
		for rows.Next() {
			var partID, eventID, roomID string
			if err := rows.Scan(&partID, &eventID, &roomID); err != nil {
				t.Logf("  message row not readable: %v", err)
				continue
			}
			parts++
			t.Logf("  message row: part %q event %s room %s; %s", partID, eventID, roomID,
				homeserverHas(ctx, client, id.RoomID(roomID), id.EventID(eventID)))
		}
		rows.Close()
		if parts == 0 {
			t.Logf("  no message row: the bridge does not believe it is in the room")
		}
		t.Logf("  bridge log of %s:\n%s", sid, bridgeLogOf(e.br.LogPath(), sid))
	}
}

// homeserverHas says whether the homeserver serves an event (GET /event) and whether the
// room's timeline as clients read it (/messages) holds it.
func homeserverHas(ctx context.Context, client *mautrix.Client, roomID id.RoomID, eventID id.EventID) string {
	if client == nil {
		return "homeserver not running, not asked"
	}
	known := "GET /event: found"
	if _, err := client.GetEvent(ctx, roomID, eventID); err != nil {
		known = "GET /event: " + err.Error()
	}
	timeline, err := roomTimeline(ctx, client, roomID)
	if err != nil {
		return fmt.Sprintf("%s; /messages: %v", known, err)
	}
	if i := slices.Index(timeline, eventID); i >= 0 {
		return fmt.Sprintf("%s; /messages: found (%d events back)", known, len(timeline)-i)
	}
	return fmt.Sprintf("%s; /messages: not among the room's %d events", known, len(timeline))
}

// lostByHomeserver returns the texts among bodies the nurse has not seen that the
// homeserver acknowledged between from and to (the bridge's log has "Sent message part
// to Matrix" with an event ID) and no longer has: GET /event answers 404 and /messages
// does not list it. Each is logged with its evidence.
func lostByHomeserver(t *testing.T, e *env, nurse *testenv.StaffAgent, all map[string]*faultText, bodies []string, from, to time.Time) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range nurse.Messages() {
		seen[m.Body] = true
	}
	if !e.hs.Running() {
		return nil
	}
	client := e.hs.Login(t, "nurse", "nurse-password-1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lost []string
	for _, b := range bodies {
		txt := all[b]
		if seen[b] || txt == nil {
			continue
		}
		acked, eventID, roomID := ackOf(e, txt.res.MessageSID)
		if acked.Before(from) || acked.After(to) {
			return nil
		}
		_, err := client.GetEvent(ctx, roomID, eventID)
		if !errors.Is(err, mautrix.MNotFound) {
			return nil
		}
		timeline, err := roomTimeline(ctx, client, roomID)
		if err != nil || slices.Contains(timeline, eventID) {
			return nil
		}
		t.Logf("%q (%s): the homeserver answered 200 with %s at %s, %v before it was told to stop, and no longer has that event (GET /event: 404, not in /messages)",
			b, txt.res.MessageSID, eventID, acked.Format(time.RFC3339Nano), to.Sub(acked).Round(time.Millisecond))
		lost = append(lost, b)
	}
	return lost
}

// ackOf returns when the homeserver acknowledged a text's event (the bridge's
// "Sent message part to Matrix" line), its ID and its room, from the bridge's log and
// database; a zero time when there is none.
func ackOf(e *env, messageSID string) (time.Time, id.EventID, id.RoomID) {
	f, err := os.Open(e.br.LogPath())
	if err != nil {
		return time.Time{}, "", ""
	}
	defer f.Close()
	var at time.Time
	var eventID id.EventID
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), messageSID) {
			continue
		}
		var line struct {
			Message string     `json:"message"`
			Time    time.Time  `json:"time"`
			EventID id.EventID `json:"event_id"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "Sent message part to Matrix" {
			at, eventID = line.Time, line.EventID
		}
	}
	if eventID == "" {
		return time.Time{}, "", ""
	}
	driver := "postgres"
	if e.db.Type != "postgres" {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, e.db.URI)
	if err != nil {
		return time.Time{}, "", ""
	}
	defer db.Close()
	var roomID string
	query := "SELECT p.mxid FROM message m JOIN portal p ON p.bridge_id=m.bridge_id AND p.id=m.room_id AND p.receiver=m.room_receiver WHERE m.id=$1 AND m.mxid=$2"
	if e.db.Type != "postgres" {
		query = strings.NewReplacer("$1", "?1", "$2", "?2").Replace(query)
	}
	err = db.QueryRow(query,
		messageSID, string(eventID)).Scan(&roomID)
	if err != nil {
		return time.Time{}, "", ""
	}
	return at, eventID, id.RoomID(roomID)
}

// roomTimeline returns a room's events as /messages gives them, oldest first.
func roomTimeline(ctx context.Context, client *mautrix.Client, roomID id.RoomID) ([]id.EventID, error) {
	var events []id.EventID
	from := ""
	for range 50 {
		resp, err := client.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, fmt.Errorf("failed to read the room after %d events: %w", len(events), err)
		}
		for _, evt := range resp.Chunk {
			events = append(events, evt.ID)
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	slices.Reverse(events)
	return events, nil
}

// bridgeLogOf returns the bridge's log lines about one text, shortened to what tells its
// story (no request bodies).
func bridgeLogOf(path, messageSID string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), messageSID) {
			continue
		}
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		// Of the Matrix requests made for the text, only its sends tell its story.
		if u, _ := line["url"].(string); line["message"] == "Request completed" && !strings.Contains(u, "/send/") {
			continue
		}
		s := fmt.Sprintf("    %v %v %q", line["time"], line["level"], line["message"])
		for _, k := range []string{"event_id", "status_code", "duration", "error", "attempt", "part", "parts", "url"} {
			if v, ok := line[k]; ok {
				s += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}
