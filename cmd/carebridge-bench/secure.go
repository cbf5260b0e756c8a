package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// secure is the secure chat's figures (issue 8): code verifications per second over the
// real pages, and the bridge's memory and CPU with many patients' chat pages open, each
// holding its live-update event stream.
type secure struct {
	// Conversations were in the database while the streams were open; AfterScale says the
	// scale phase's were among them.
	Conversations int  `json:"conversations"`
	AfterScale    bool `json:"after_scale"`
	// LiveRooms are texting patients switched to secure mode with `!sms secure`; their
	// streams show that a staff message reaches an open chat page.
	LiveRooms int `json:"live_rooms"`

	// Verifications: the right code posted to /s/{token}/verify, answered with the
	// session cookie, each on its own link and patient. SetupSeconds opened the links
	// and had the codes texted (through the fake Twilio) before.
	Verifications int `json:"verifications"`
	// WebReplicas served the patients' pages (0: the bridge did).
	WebReplicas        int     `json:"web_replicas"`
	VerifyConcurrency  int     `json:"verify_concurrency"`
	VerifyAnswer       dist    `json:"verify_answer"`
	VerifyPerSecond    float64 `json:"verify_per_s"`
	VerifySeconds      float64 `json:"verify_seconds"`
	VerifyBridgeCPUPct float64 `json:"verify_bridge_cpu_pct"`
	VerifyRSSMB        float64 `json:"verify_bridge_rss_mb"`
	SetupSeconds       float64 `json:"setup_seconds"`

	// Sessions is how many event streams were open at once; VerifiedSessions of them had
	// their session from the code flow, the others from rows the bench stored.
	Sessions         int     `json:"sessions"`
	VerifiedSessions int     `json:"verified_sessions"`
	StreamStart      dist    `json:"stream_start"`
	OpenSeconds      float64 `json:"open_seconds"`
	Dropped          int     `json:"streams_dropped"`
	// Bridge RSS: at the start of the phase, before the streams, with them open, and the
	// peak (VmHWM) of the bridge's whole run.
	RSSStartMB  float64 `json:"bridge_rss_start_mb"`
	RSSBeforeMB float64 `json:"bridge_rss_before_streams_mb"`
	RSSOpenMB   float64 `json:"bridge_rss_streams_open_mb"`
	// WebRSSOpenMB is the web replicas' RSS together with the streams open.
	WebRSSOpenMB    float64 `json:"web_rss_streams_open_mb"`
	RSSPeakMB       float64 `json:"bridge_rss_peak_mb"`
	PerStreamKB     float64 `json:"bridge_rss_per_stream_kb"`
	IdleSeconds     float64 `json:"idle_seconds"`
	IdleCPUPct      float64 `json:"idle_bridge_cpu_pct"`
	IdleKeepalives  int64   `json:"idle_keepalives"`
	ActiveSessions  float64 `json:"metric_sessions_active"`
	GoroutinesStart float64 `json:"goroutines_before_streams"`
	GoroutinesOpen  float64 `json:"goroutines_streams_open"`
	GoroutinesAfter float64 `json:"goroutines_after_close"`
	// LiveUpdate is from the nurse's send in a live room to the update event on that
	// patient's stream.
	LiveUpdate dist `json:"live_update"`
}

const (
	secureConcurrency = 8
	// secureOpenConcurrency is how many event streams are being opened at a time.
	secureOpenConcurrency = 32
	// maxLiveRooms bounds the rooms switched to secure mode: enough to see updates arrive.
	maxLiveRooms = 10
	// secureIdleWindow is longer than the event stream's 25 s keepalive, at which the
	// bridge checks each stream's session: every stream's check falls in it once.
	secureIdleWindow = 30 * time.Second
)

// secure measures code verifications, then opens the event streams and samples the
// bridge. Patients: the first few texting patients (live rooms), then conversations the
// bench stores in secure mode, each with its own link, and if more streams than
// verifications are asked for, stored sessions for the rest.
func (s *system) secure(ctx context.Context, verifications, sessions int, afterScale bool) (*secure, error) {
	sc := &secure{AfterScale: afterScale, Verifications: verifications, VerifyConcurrency: secureConcurrency, WebReplicas: len(s.webs)}
	if err := ensureOpenFiles(sessions, s.br.Pid()); err != nil {
		return nil, err
	}
	start, _ := readProc(s.br.Pid())
	sc.RSSStartMB = mb(start.RSSBytes)
	keys, cfg, err := s.secureKeys()
	if err != nil {
		return nil, err
	}
	db, err := s.openDB()
	if err != nil {
		return nil, fmt.Errorf("failed to open the bridge database: %w", err)
	}
	defer db.Close()
	tr := patientTransport(sessions)
	defer tr.CloseIdleConnections()

	live := min(maxLiveRooms, len(s.rooms), verifications)
	sc.LiveRooms = live
	if live > 0 {
		note("[%s] secure chat: %d conversations to secure mode with !sms secure", s.kind, live)
	}
	pats, err := s.secureRooms(ctx, db, tr, live)
	if err != nil {
		return nil, err
	}
	total := max(verifications, sessions)
	note("[%s] secure chat: storing %d conversations in secure mode, with a link each", s.kind, total-live)
	if err = s.storeSecureConversations(ctx, db, total-live); err != nil {
		return nil, err
	}
	for i := 1; i <= total-live; i++ {
		pats = append(pats, newPatient(tr, securePhone(i)))
	}
	if err = s.storeLinks(ctx, db, keys, cfg, pats[live:verifications]); err != nil {
		return nil, err
	}
	if verifications > 0 {
		if err = s.verifyCodes(ctx, sc, pats[:verifications]); err != nil {
			return nil, err
		}
	}
	if err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM conversation").Scan(&sc.Conversations); err != nil {
		return nil, fmt.Errorf("failed to count conversations: %w", err)
	}
	if sessions == 0 {
		return sc, nil
	}
	rest := pats[verifications:]
	if err = s.storeLinks(ctx, db, keys, cfg, rest); err != nil {
		return nil, err
	}
	if err = s.storeSessions(ctx, db, keys, cfg, rest); err != nil {
		return nil, err
	}
	return sc, s.holdStreams(ctx, sc, pats[:sessions])
}

// verifyCodes has every patient ask for a code (not timed), then times entering them.
func (s *system) verifyCodes(ctx context.Context, sc *secure, pats []*patient) error {
	n := len(pats)
	ctx, cancel := context.WithTimeout(ctx, phaseTimeout(n))
	defer cancel()
	note("[%s] secure chat: %d patients open their link and ask for a code", s.kind, n)
	begin := time.Now()
	prog := startProgress(fmt.Sprintf("[%s] secure codes texted", s.kind), n)
	err := s.textCodes(ctx, pats, secureConcurrency, prog)
	prog.end()
	if err != nil {
		return err
	}
	sc.SetupSeconds = time.Since(begin).Seconds()

	prog = startProgress(fmt.Sprintf("[%s] secure verifications c=%d", s.kind, secureConcurrency), n)
	defer prog.end()
	answers := make([]time.Duration, n)
	before, _ := readProc(s.br.Pid())
	begin = time.Now()
	err = parallel(secureConcurrency, n, func(i int) error {
		start := time.Now()
		err := pats[i].verify(ctx, s.pageBase(i))
		answers[i] = time.Since(start)
		prog.sent.Add(1)
		if err == nil {
			prog.seen.Add(1)
		}
		return err
	})
	if err != nil {
		return err
	}
	elapsed := time.Since(begin)
	sc.VerifySeconds = elapsed.Seconds()
	sc.VerifyPerSecond = float64(n) / elapsed.Seconds()
	sc.VerifyAnswer = summarise(answers)
	if after, err := readProc(s.br.Pid()); err == nil {
		sc.VerifyRSSMB = mb(after.RSSBytes)
		sc.VerifyBridgeCPUPct = 100 * float64(after.CPU-before.CPU) / float64(elapsed)
	}
	note("[%s] secure chat: %d verifications at c=%d: %.1f/s, answer p99 %.1f ms", s.kind, n, secureConcurrency,
		sc.VerifyPerSecond, sc.VerifyAnswer.P99)
	return nil
}

// holdStreams opens every patient's event stream, holds them open while it samples the
// bridge, sends a staff message into each live room, and closes them.
func (s *system) holdStreams(ctx context.Context, sc *secure, pats []*patient) error {
	n := len(pats)
	sc.Sessions = n
	for _, p := range pats {
		if p.verified {
			sc.VerifiedSessions++
		}
	}
	sc.GoroutinesStart = s.metric(ctx, "go_goroutines")
	before, _ := readProc(s.br.Pid())
	sc.RSSBeforeMB = mb(before.RSSBytes)

	note("[%s] secure chat: opening %d event streams", s.kind, n)
	streams := make([]*stream, n)
	defer func() {
		for _, st := range streams {
			if st != nil {
				st.close()
			}
		}
	}()
	starts := make([]time.Duration, n)
	prog := startProgress(fmt.Sprintf("[%s] secure event streams", s.kind), n)
	begin := time.Now()
	err := parallel(secureOpenConcurrency, n, func(i int) error {
		start := time.Now()
		prog.sent.Add(1)
		st, err := pats[i].openStream(ctx, s.pageBase(i))
		if err != nil {
			return err
		}
		starts[i] = time.Since(start)
		streams[i] = st
		prog.seen.Add(1)
		return nil
	})
	prog.end()
	if err != nil {
		return err
	}
	sc.OpenSeconds = time.Since(begin).Seconds()
	sc.StreamStart = summarise(starts)

	// Let the bridge settle (its garbage collector, the opening's buffers) before sampling.
	time.Sleep(3 * time.Second)
	open, _ := readProc(s.br.Pid())
	sc.RSSOpenMB = mb(open.RSSBytes)
	for _, pid := range s.webPids {
		if web, err := readProc(pid); err == nil {
			sc.WebRSSOpenMB += mb(web.RSSBytes)
		}
	}
	sc.PerStreamKB = float64(open.RSSBytes-before.RSSBytes) / 1024 / float64(n)
	sc.GoroutinesOpen = s.metric(ctx, "go_goroutines")
	sc.ActiveSessions = s.metric(ctx, "carebridge_secure_sessions_active")

	note("[%s] secure chat: %d streams open; bridge idle for %s", s.kind, n, secureIdleWindow)
	var keepalives int64
	for _, st := range streams {
		keepalives -= st.keepalives.Load()
	}
	idleFrom := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(secureIdleWindow):
	}
	idle, _ := readProc(s.br.Pid())
	sc.IdleSeconds = time.Since(idleFrom).Seconds()
	sc.IdleCPUPct = 100 * float64(idle.CPU-open.CPU) / float64(time.Since(idleFrom))
	for _, st := range streams {
		keepalives += st.keepalives.Load()
	}
	sc.IdleKeepalives = keepalives
	sc.RSSPeakMB = mb(idle.PeakRSSBytes)

	if err = s.liveUpdates(ctx, sc, pats, streams); err != nil {
		return err
	}
	for _, st := range streams {
		if st.gone.Load() || st.ended.Load() {
			sc.Dropped++
		}
	}
	for i, st := range streams {
		st.close()
		streams[i] = nil
	}
	time.Sleep(3 * time.Second)
	sc.GoroutinesAfter = s.metric(ctx, "go_goroutines")
	return nil
}

// liveUpdates has the nurse write in each live room and times the update event on that
// patient's open stream.
func (s *system) liveUpdates(ctx context.Context, sc *secure, pats []*patient, streams []*stream) error {
	var idx []int
	for i, p := range pats {
		if p.live {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	note("[%s] secure chat: the nurse writes in %d live rooms", s.kind, len(idx))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	marks := make([]int64, len(idx))
	sent := make([]time.Time, len(idx))
	for k, i := range idx {
		marks[k] = streams[i].updates.Load()
	}
	err := parallel(len(idx), len(idx), func(k int) error {
		sent[k] = time.Now()
		_, err := s.staff.send(ctx, pats[idx[k]].room, "Please also book a follow-up visit for next week")
		return err
	})
	if err != nil {
		return err
	}
	var latencies []time.Duration
	for k, i := range idx {
		for streams[i].updates.Load() == marks[k] {
			select {
			case <-ctx.Done():
				return fmt.Errorf("a staff message did not reach the patient's open chat page (%d of %d did): %w",
					len(latencies), len(idx), ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		latencies = append(latencies, time.Unix(0, streams[i].lastUpdate.Load()).Sub(sent[k]))
	}
	sc.LiveUpdate = summarise(latencies)
	return nil
}

// metric reads one unlabelled value from the bridge's metrics listener (-1 without it).
func (s *system) metric(ctx context.Context, name string) float64 {
	if s.metricsURL == "" {
		return -1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				return v
			}
		}
	}
	return -1
}

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }
