package main

import (
	"context"
	"fmt"
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
	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/testenv"
)

// standbyPair is two carebridge processes on one PostgreSQL database behind a proxy that
// sends the homeserver's and Twilio's requests to the ready one.
type standbyPair struct {
	*env
	nurse   *testenv.StaffAgent
	loginID string
	proxy   *testenv.ReadyProxy
	standby *testenv.Bridge
}

func newStandbyPair(t *testing.T, kind string) (*standbyPair, context.Context) {
	proxy := testenv.NewReadyProxy(t)
	e, nurse, loginID, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		port := cfg["appservice"].(map[string]any)["port"]
		proxy.AddBackend(t, fmt.Sprintf("http://127.0.0.1:%v", port))
		for _, key := range []string{"address", "public_address"} {
			require.NoError(t, dendrite.SetYAMLPath(cfg, []string{"appservice", key}, proxy.URL()))
		}
	})
	// The second process: the same config (tokens, keys, database), its own port.
	standby := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: e.hs, DB: e.db, TwilioAPIURL: e.fake.URL(),
		StaffInvites: []string{e.nurseID}})
	raw, err := os.ReadFile(e.br.ConfigPath())
	require.NoError(t, err)
	standby.EditConfig(func(cfg map[string]any) {
		port := cfg["appservice"].(map[string]any)["port"]
		var active map[string]any
		require.NoError(t, yaml.Unmarshal(raw, &active))
		clear(cfg)
		for k, v := range active {
			cfg[k] = v
		}
		require.NoError(t, dendrite.SetYAMLPath(cfg, []string{"appservice", "port"}, port))
	})
	proxy.AddBackend(t, standby.URL())
	return &standbyPair{env: e, nurse: nurse, loginID: loginID, proxy: proxy, standby: standby}, ctx
}

func getStatus(t *testing.T, rawURL string) (int, string) {
	resp, err := http.Get(rawURL)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	buf := new(strings.Builder)
	_, _ = fmt.Fprint(buf, resp.Status)
	return resp.StatusCode, buf.String()
}

// TestStandbyTakesOver runs two processes on one PostgreSQL database: the second waits
// as a standby (alive, not ready, storing the Twilio texts that reach it for the active
// one) and takes over within 10 s of the active one being SIGKILLed; the conversation
// goes on through the proxy both ways, nothing twice. On Dendrite and on Synapse (whose
// ping must reach the starting process through the proxy).
func TestStandbyTakesOver(t *testing.T) {
	for _, kind := range []string{"postgres", testenv.HomeserverSynapse + "/postgres"} {
		if strings.HasPrefix(kind, testenv.HomeserverSynapse) && !slices.Contains(testenv.HomeserverKinds(t), testenv.HomeserverSynapse) {
			continue
		}
		t.Run(kind, func(t *testing.T) { runStandbyTakesOver(t, kind) })
	}
}

func runStandbyTakesOver(t *testing.T, kind string) {
	p, ctx := newStandbyPair(t, kind)
	seen := func(body string) {
		t.Helper()
		_, err := p.nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == body })
		require.NoError(t, err, "the nurse sees %q", body)
	}
	res, err := p.fake.SendInbound(ctx, patient, clinicPhone, "before the standby")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	require.True(t, strings.HasPrefix(res.URL, p.proxy.URL()), "Twilio calls the proxy (%s)", res.URL)
	seen("before the standby")

	p.standby.Launch()
	require.Eventually(t, func() bool {
		code, _ := getStatus(t, p.standby.URL()+"/_matrix/mau/live")
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the standby is alive")
	code, _ := getStatus(t, p.standby.URL()+"/_matrix/mau/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code, "the standby is not ready")
	code, _ = getStatus(t, p.standby.URL()+bridge.ActivePath)
	assert.Equal(t, http.StatusServiceUnavailable, code, "the standby is not active")
	code, _ = getStatus(t, p.br.URL()+bridge.ActivePath)
	assert.Equal(t, http.StatusOK, code, "the first process is active")
	assert.Contains(t, p.standby.Log(), "waiting as a standby")

	// A text that reaches the standby (a load balancer that sent it there) is stored and
	// delivered by the active process.
	p.proxy.Pin(1)
	res, err = p.fake.SendInbound(ctx, patient, clinicPhone, "through the standby")
	p.proxy.Pin(-1)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	seen("through the standby")

	// The active process dies; the standby takes over.
	p.br.Kill()
	killedAt := time.Now()
	p.standby.WaitReady()
	require.Eventually(t, func() bool {
		code, _ := getStatus(t, p.proxy.URL()+"/_matrix/mau/ready")
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	tookOver := time.Since(killedAt)
	t.Logf("the standby took over %s after the SIGKILL", tookOver.Round(time.Millisecond))
	assert.Less(t, tookOver, 10*time.Second, "the standby takes over within 10 s")

	res, err = p.fake.SendInbound(ctx, patient, clinicPhone, "after the failover")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	m, err := p.nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "after the failover" })
	require.NoError(t, err)
	_, _, err = p.nurse.Send(ctx, m.RoomID, "The new process answers.")
	require.NoError(t, err)
	_, err = p.fake.WaitForMessage(ctx, func(f testenv.FakeMessage) bool { return strings.Contains(f.Body, "The new process answers.") })
	require.NoError(t, err, "a staff reply reaches Twilio through the new active process")

	time.Sleep(2 * time.Second)
	for _, body := range []string{"before the standby", "through the standby", "after the failover"} {
		assert.Equal(t, 1, countBodies(p.nurse, body), "%q once", body)
	}
}

const (
	failoverPatients   = 10
	failoverPerPatient = 20 // 200 inbound texts
	failoverReplies    = 5  // per room: 50 staff replies
)

// TestFailoverUnderLoad: 200 inbound texts and 50 staff replies across 10 conversations
// while the active process is SIGKILLed a third of the way in. The standby takes over in
// under 10 s; every text reaches the nurse once, in each patient's order, and every reply
// reaches Twilio once, in each room's order. Texts Twilio could not hand to any process
// during the switch are found in its message log.
func TestFailoverUnderLoad(t *testing.T) {
	p, ctx := newStandbyPair(t, "postgres")
	patientOf := func(i int) string { return fmt.Sprintf("+1555123470%d", i) }
	rooms := make([]string, failoverPatients)
	for i := range failoverPatients {
		body := fmt.Sprintf("patient %d hello", i)
		res, err := p.fake.SendInbound(ctx, patientOf(i), clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	}
	for i := range failoverPatients {
		m, err := p.nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == fmt.Sprintf("patient %d hello", i) })
		require.NoError(t, err)
		rooms[i] = m.RoomID
	}
	p.standby.Launch()
	require.Eventually(t, func() bool {
		code, _ := getStatus(t, p.standby.URL()+"/_matrix/mau/live")
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the standby is alive")

	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := range failoverPatients {
		wg.Add(2)
		go func() { // the patient
			defer wg.Done()
			for seq := 1; seq <= failoverPerPatient; seq++ {
				// Refused calls (no process ready for a moment) are in Twilio's log.
				_, _ = p.fake.SendInbound(ctx, patientOf(i), clinicPhone, fmt.Sprintf("patient %d message %02d", i, seq))
				sent.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		}()
		go func() { // the nurse in that room
			defer wg.Done()
			for seq := 1; seq <= failoverReplies; seq++ {
				_, _, err := p.nurse.Send(ctx, rooms[i], fmt.Sprintf("reply %d to patient %d", seq, i))
				assert.NoError(t, err)
				time.Sleep(400 * time.Millisecond)
			}
		}()
	}
	require.Eventually(t, func() bool { return sent.Load() >= failoverPatients*failoverPerPatient/3 },
		time.Minute, 10*time.Millisecond)
	p.br.Kill()
	killedAt := time.Now()
	p.standby.WaitReady()
	tookOver := time.Since(killedAt)
	t.Logf("the standby took over %s after the SIGKILL", tookOver.Round(time.Millisecond))
	assert.Less(t, tookOver, 10*time.Second, "the standby takes over within 10 s")
	wg.Wait()

	// Every patient text reaches the nurse once, in order.
	want := map[string][2]int{}
	for i := range failoverPatients {
		for seq := 1; seq <= failoverPerPatient; seq++ {
			want[fmt.Sprintf("patient %d message %02d", i, seq)] = [2]int{i, seq}
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, waitBodies(waitCtx, p.nurse, want), "every text reaches the nurse")
	// Every reply reaches Twilio.
	require.Eventually(t, func() bool {
		n := 0
		for _, m := range p.fake.Messages() {
			if strings.Contains(m.Body, "reply ") {
				n++
			}
		}
		return n >= failoverPatients*failoverReplies
	}, 2*time.Minute, 200*time.Millisecond, "every reply reaches Twilio")
	time.Sleep(3 * time.Second) // a second copy would come by now

	count := map[string]int{}
	last := map[int]int{}
	for _, m := range p.nurse.Messages() {
		w, ok := want[m.Body]
		if !ok {
			continue
		}
		count[m.Body]++
		assert.Equal(t, rooms[w[0]], m.RoomID, "%q in its patient's room", m.Body)
		if m.Backfilled {
			continue
		}
		assert.Greater(t, w[1], last[w[0]], "patient %d: message %02d after %02d", w[0], w[1], last[w[0]])
		last[w[0]] = max(last[w[0]], w[1])
	}
	for body, n := range count {
		assert.Equal(t, 1, n, "%q delivered once", body)
	}
	replies := map[string]int{}
	lastReply := map[string]int{}
	for _, m := range p.fake.Messages() {
		var seq, patientIdx int
		i := strings.Index(m.Body, "reply ")
		if i < 0 {
			continue
		}
		if _, err := fmt.Sscanf(m.Body[i:], "reply %d to patient %d", &seq, &patientIdx); err != nil {
			continue
		}
		replies[m.Body]++
		assert.Equal(t, patientOf(patientIdx), m.To)
		assert.Greater(t, seq, lastReply[m.To], "%s: reply %d after %d", m.To, seq, lastReply[m.To])
		lastReply[m.To] = max(lastReply[m.To], seq)
	}
	assert.Len(t, replies, failoverPatients*failoverReplies, "every reply at Twilio")
	for body, n := range replies {
		assert.Equal(t, 1, n, "%q sent once", body)
	}
}
