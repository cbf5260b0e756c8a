package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/testenv"
)

// The bench's cast: one clinic number, a nurse, patients +1555200xxxx.
const (
	accountSID    = "AC0123456789abcdef0123456789abcdef"
	authToken     = "fedcba9876543210fedcba9876543210"
	clinicPhone   = "+15550001111"
	nursePassword = "nurse-password-1"
)

// system is one running carebridge: fake Twilio, the homeserver (Dendrite, or Synapse for a
// kind such as "synapse/sqlite": testenv.SplitKind), the bridge on one database,
// and the nurse's client, with every patient's room open and the baseline rooms made.
type system struct {
	kind     string
	db       testenv.DBSpec
	fake     *testenv.FakeTwilio
	hs       testenv.Homeserver
	br       *testenv.Bridge
	staff    *staff
	loginID  string
	patients []string
	// ghosts[i] is patients[i]'s ghost (an opaque ID the bridge gives).
	ghosts []id.UserID
	// rooms[i] is patients[i]'s room; baseline are rooms with only the nurse.
	rooms    []id.RoomID
	baseline []id.RoomID
	// metricsURL is the bridge's metrics listener (Prometheus /metrics).
	metricsURL string
	// webs are the web replicas' base URLs (-web-replicas), webPids their processes.
	webs    []string
	webPids []int
}

func patientNumber(i int) string { return fmt.Sprintf("+1555200%04d", i) }

// ghostOf asks the bridge for a patient number's ghost (its ID does not hold the number),
// as start-chat does: the provisioning API's resolve_identifier.
func ghostOf(ctx context.Context, br *testenv.Bridge, adminID, e164 string) (id.UserID, error) {
	var resp struct {
		MXID id.UserID `json:"mxid"`
	}
	_, err := br.Provision(ctx, http.MethodGet, "/v3/resolve_identifier/"+url.PathEscape(e164), adminID, nil, &resp)
	return resp.MXID, err
}

// startSystem starts everything for one database kind and warms it up: each patient texts
// once (the bridge creates the room, the nurse joins), the nurse answers once in each
// room (encryption keys get shared), and the baseline rooms are created and used once.
// bridgeSettings are the bench's changes to the bridge's defaults.
type bridgeSettings struct {
	// Pprof serves the profiler on the metrics listener (network.metrics.pprof).
	Pprof bool
	// StatusEvents is matrix.message_status_events (on by default; each costs the
	// homeserver a room event).
	StatusEvents bool
	// TwilioLatency is how long the fake Twilio takes to answer each REST call.
	TwilioLatency time.Duration
	// OutboxConcurrency is outbox.concurrency (0: the bridge's default).
	OutboxConcurrency int
}

func startSystem(ctx context.Context, t *benchTB, kind string, patients int, settings bridgeSettings) *system {
	_, dbKind := testenv.SplitKind(kind)
	s := &system{kind: kind, db: testenv.NewDatabase(t, dbKind), fake: testenv.NewFakeTwilio()}
	t.Cleanup(s.fake.Close)
	// Fixed rather than spread, so that the report can name the latency the run used.
	s.fake.SetLatency(settings.TwilioLatency, settings.TwilioLatency)
	s.fake.AddAccount(accountSID, authToken)
	s.fake.AddNumber(accountSID, clinicPhone)
	s.hs = testenv.NewHomeserver(t, kind)
	nurseID := "@nurse:" + s.hs.ServerName()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.metricsURL = "http://" + metricsAddr
	s.br = testenv.NewBridge(t, testenv.BridgeOptions{
		Homeserver: s.hs, DB: s.db, TwilioAPIURL: s.fake.URL(), StaffInvites: []string{nurseID},
		// Production logs at info; the tests' debug level would measure the log writer.
		Edit: func(cfg map[string]any) {
			cfg["logging"] = map[string]any{
				"min_level": "info",
				"writers":   []any{map[string]any{"type": "stdout", "format": "json"}},
			}
			// As a clinic runs it, with its metrics scraped; the secure chat phase reads them.
			if err := dendrite.SetYAMLPath(cfg, []string{"network", "metrics", "listen"}, metricsAddr); err != nil {
				t.Fatalf("failed to edit the bridge config: %v", err)
			}
			if err := dendrite.SetYAMLPath(cfg, []string{"network", "metrics", "pprof"}, settings.Pprof); err != nil {
				t.Fatalf("failed to edit the bridge config: %v", err)
			}
			if err := dendrite.SetYAMLPath(cfg, []string{"matrix", "message_status_events"}, settings.StatusEvents); err != nil {
				t.Fatalf("failed to edit the bridge config: %v", err)
			}
			if settings.OutboxConcurrency > 0 {
				if err := dendrite.SetYAMLPath(cfg, []string{"outbox", "concurrency"}, settings.OutboxConcurrency); err != nil {
					t.Fatalf("failed to edit the bridge config: %v", err)
				}
			}
		},
	})
	note("[%s] starting %s and carebridge", kind, s.hs.Kind())
	s.hs.Start(s.br.RegistrationPath)
	adminID := s.hs.CreateUser(t, "admin", "admin-password-1")
	s.hs.CreateUser(t, "nurse", nursePassword)
	s.br.Start()
	var err error
	if s.loginID, err = s.br.LinkNumber(ctx, adminID, accountSID, authToken, clinicPhone); err != nil {
		t.Fatalf("failed to link the clinic number: %v", err)
	}
	if s.staff, err = newStaff(ctx, s.hs.URL(), "nurse", nursePassword); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.staff.close)

	note("[%s] warm-up: %d patients text once, the nurse joins each room", kind, patients)
	for i := range patients {
		s.patients = append(s.patients, patientNumber(i))
		ghost, err := ghostOf(ctx, s.br, adminID, s.patients[i])
		if err != nil {
			t.Fatalf("failed to get patient %d's ghost: %v", i, err)
		}
		s.ghosts = append(s.ghosts, ghost)
	}
	err = parallel(8, patients, func(i int) error {
		res, err := s.fake.SendInbound(ctx, s.patients[i], clinicPhone, "Hello, this is a new patient")
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("webhook answered HTTP %d: %s", res.StatusCode, res.Body)
		}
		return err
	})
	if err != nil {
		t.Fatalf("warm-up texts failed: %v", err)
	}
	// The bridge creates the rooms one after the other: about a second each here.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(patients)*3*time.Second)
	defer cancel()
	err = s.staff.Wait(wctx, "every patient's room", func() bool {
		for _, ghost := range s.ghosts {
			room, ok := s.staff.ghostRoom[ghost]
			if !ok || !s.staff.joined[room] {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.staff.Mu.Lock()
	for _, ghost := range s.ghosts {
		s.rooms = append(s.rooms, s.staff.ghostRoom[ghost])
	}
	s.staff.Mu.Unlock()

	note("[%s] warm-up: the nurse answers once in each room", kind)
	wctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	before := len(s.fake.Messages())
	err = parallel(8, patients, func(i int) error {
		_, err := s.staff.send(wctx, s.rooms[i], "Thanks, we will get back to you")
		return err
	})
	if err != nil {
		t.Fatalf("warm-up replies failed: %v", err)
	}
	if err = waitFake(wctx, s.fake, func(m []testenv.FakeMessage) bool { return len(m) >= before+patients }); err != nil {
		t.Fatalf("warm-up replies did not reach Twilio: %v", err)
	}

	note("[%s] warm-up: %d baseline rooms with only the nurse", kind, patients)
	wctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	s.baseline = make([]id.RoomID, patients)
	err = parallel(8, patients, func(i int) error {
		room, err := s.staff.createEncryptedRoom(wctx, fmt.Sprintf("baseline %d", i))
		if err != nil {
			return err
		}
		s.baseline[i] = room
		evt, err := s.staff.send(wctx, room, "baseline warm-up")
		if err != nil {
			return err
		}
		return s.staff.Wait(wctx, "the baseline warm-up echo", func() bool { _, ok := s.staff.ownSeen[evt]; return ok })
	})
	if err != nil {
		t.Fatalf("baseline warm-up failed: %v", err)
	}
	return s
}

// parallel runs f(0..n-1) on `workers` goroutines and returns the first error.
func parallel(workers, n int, f func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := firstErr != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// waitFake polls the fake's outbound messages until cond holds.
func waitFake(ctx context.Context, fake *testenv.FakeTwilio, cond func([]testenv.FakeMessage) bool) error {
	for {
		if cond(fake.Messages()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
