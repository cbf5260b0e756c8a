package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

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

func newStandbyPair(t *testing.T, ctx context.Context) (*standbyPair, context.Context) {
	proxy := testenv.NewReadyProxy(t)
	e, nurse, loginID, ctx := linkedEnv(t, "postgres", func(cfg map[string]any) {
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
// goes on through the proxy both ways, nothing twice.
func TestStandbyTakesOver(t *testing.T) {
	ctx := context.Background()
	p, ctx := newStandbyPair(t, ctx)
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
