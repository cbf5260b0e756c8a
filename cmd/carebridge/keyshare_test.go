package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/testenv"
)

// keyShareLoser stands between the bridge and the homeserver, forwarding everything
// until armed; then it answers the bridge's next encrypted to-device message (a room
// key share) 200 without passing it on, as a homeserver that accepted it and went down
// before delivering it would, and answers the next encrypted room send 502.
type keyShareLoser struct {
	proxy *httputil.ReverseProxy

	mu         sync.Mutex
	armed      bool
	shareLost  bool
	sendFailed bool
	log        []string
}

func newKeyShareLoser(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	require.NoError(t, err)
	l := &keyShareLoser{proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return srv
}

func (l *keyShareLoser) arm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = true
}

func (l *keyShareLoser) state() (shareLost, sendFailed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shareLost, l.sendFailed
}

func (l *keyShareLoser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	l.mu.Lock()
	switch {
	case l.armed && !l.shareLost && r.Method == http.MethodPut &&
		strings.Contains(path, "/sendToDevice/m.room.encrypted/"):
		l.shareLost = true
		l.log = append(l.log, "lost "+path)
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	case l.shareLost && !l.sendFailed && r.Method == http.MethodPut &&
		strings.Contains(path, "/send/m.room.encrypted/"):
		l.sendFailed = true
		l.armed = false
		l.log = append(l.log, "failed "+path)
		l.mu.Unlock()
		http.Error(w, "homeserver going down", http.StatusBadGateway)
		return
	}
	if l.shareLost && r.Method == http.MethodPut {
		l.log = append(l.log, "passed "+path)
	}
	l.mu.Unlock()
	l.proxy.ServeHTTP(w, r)
}

// TestLostKeyShareIsSharedAgain: the homeserver accepts the bot's share of a new group
// session and fails before delivering it, and the send of the patient's text under that
// session fails too. Sent again, the text must come with a session staff can decrypt:
// the bridge drops a room's session when a send into it fails at the homeserver.
// (Found by TestFaultInbound under load: a Dendrite outage lost a share and staff could
// never read three texts; staff clients here are not cross-signed, so the bot refuses
// their key requests.) One database: this is the bridge's crypto, not its queries.
func TestLostKeyShareIsSharedAgain(t *testing.T) {
	var loser *keyShareLoser
	e, nurse, _, ctx := linkedEnv(t, "sqlite", func(cfg map[string]any) {
		hs := cfg["homeserver"].(map[string]any)["address"].(string)
		srv := newKeyShareLoser(t, hs)
		loser = srv.Config.Handler.(*keyShareLoser)
		require.NoError(t, dendrite.SetYAMLPath(cfg, []string{"homeserver", "address"}, srv.URL))
	})
	var sent []string
	text := func() {
		body := fmt.Sprintf("lost key share check %d", len(sent)+1)
		res, err := e.fake.SendInbound(ctx, patient, clinicPhone, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
		sent = append(sent, body)
	}
	// The room and its first session, shared and delivered.
	text()
	_, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == sent[0] })
	require.NoError(t, err)

	// A second device of the nurse ends that session (the bot starts a new one at the
	// next text, as for any device change in the room); its share is the one lost.
	loser.arm()
	testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")
	for i := 0; i < 30; i++ {
		if shareLost, sendFailed := loser.state(); shareLost && sendFailed {
			break
		}
		text()
		time.Sleep(time.Second)
	}
	shareLost, sendFailed := loser.state()
	require.True(t, shareLost && sendFailed, "the proxy lost a room key share and failed the send after it (%q)", loser.log)
	text() // and one more after it, in the same room

	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, body := range sent {
		m, err := nurse.WaitMessage(waitCtx, func(m testenv.AgentMessage) bool { return m.Body == body })
		require.NoError(t, err, "the nurse decrypts %q (proxy: %q; undecryptable: %v)", body, loser.log, nurse.Undecryptable())
		assert.True(t, m.Encrypted)
	}
}
