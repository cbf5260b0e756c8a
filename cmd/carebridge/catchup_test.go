package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

const (
	catchUpPatients   = 3
	catchUpPerPatient = 10
	// catchUpDowntime is how long the bridge is down (issue: a minute, 30 texts).
	catchUpDowntime = 60 * time.Second
)

// TestCatchUpAfterDowntime stops the bridge for a minute while 30 texts arrive. The fake answers as
// Twilio does: it calls the webhook as its connection overrides say (a few immediate
// retries, all refused) and then gives up; nobody re-posts anything. After the start
// every text is in its patient's room, in the order sent, once: the bridge found them
// in Twilio's message log. A reply whose delivery callbacks fell into the downtime gets
// its final status from Twilio too.
//
// It waits most of its two minutes (the downtime): in parallel with the other such tests,
// and the two databases side by side.
func TestCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			runCatchUpAfterDowntime(t, kind)
		})
	}
}

func runCatchUpAfterDowntime(t *testing.T, kind string) {
	e, nurse, loginID, ctx := linkedEnv(t, kind, nil)
	patientOf := func(p int) string { return fmt.Sprintf("+1555123460%d", p) }

	// Each patient has a room with the nurse in it.
	rooms := map[string]string{}
	for p := range catchUpPatients {
		res, err := e.fake.SendInbound(ctx, patientOf(p), clinicPhone, fmt.Sprintf("patient %d hello", p))
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode, res.Body)
		assert.Equal(t, sms.WithConnectionOverrides(e.br.InboundURL(loginID)), res.URL, "the webhook asks Twilio for retries")
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == fmt.Sprintf("patient %d hello", p) })
		require.NoError(t, err)
		rooms[patientOf(p)] = m.RoomID
	}
	// A reply whose status callbacks come while the bridge is down.
	e.fake.SetCallbackDelay(3 * time.Second)
	_, _, err := nurse.Send(ctx, rooms[patientOf(0)], "We will call you back today.")
	require.NoError(t, err)
	reply, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return strings.Contains(m.Body, "We will call you back today.") })
	require.NoError(t, err)

	e.br.Stop()
	stoppedAt := time.Now()
	pause := catchUpDowntime / (catchUpPatients * catchUpPerPatient)
	want := map[string][2]int{}
	for seq := 1; seq <= catchUpPerPatient; seq++ {
		for p := range catchUpPatients {
			body := fmt.Sprintf("patient %d message %02d", p, seq)
			want[body] = [2]int{p, seq}
			res, err := e.fake.SendInbound(ctx, patientOf(p), clinicPhone, body)
			require.Error(t, err, "the bridge is down")
			assert.Equal(t, 6, res.Attempts, "the first call and the 5 retries its overrides ask for, then nothing")
			time.Sleep(pause)
		}
	}
	_, err = e.fake.WaitForStatusCallback(ctx, func(c testenv.CallbackResult) bool {
		return c.MessageSID == reply.SID && c.MessageStatus == "delivered"
	})
	require.NoError(t, err)
	time.Sleep(time.Until(stoppedAt.Add(catchUpDowntime)))
	e.br.Restart()

	// Every text reaches the nurse, once, in its room, in order.
	require.NoError(t, waitBodies(ctx, nurse, want), "the texts sent while the bridge was down")
	require.Eventually(t, func() bool {
		n, err := pendingReceipts(e.db)
		return err == nil && n == 0
	}, 30*time.Second, 200*time.Millisecond, "every receipt is marked delivered")
	time.Sleep(2 * time.Second) // a second copy would arrive within the nurse's sync
	count := map[string]int{}
	last := map[int]int{}
	for _, m := range nurse.Messages() {
		w, ok := want[m.Body]
		if !ok {
			continue
		}
		count[m.Body]++
		assert.True(t, m.Encrypted, m.Body)
		assert.Equal(t, rooms[patientOf(w[0])], m.RoomID, "%q in its patient's room", m.Body)
		if m.Backfilled {
			continue
		}
		assert.Greater(t, w[1], last[w[0]], "patient %d: message %02d after %02d", w[0], w[1], last[w[0]])
		last[w[0]] = max(last[w[0]], w[1])
	}
	assert.Len(t, count, len(want), "every text delivered")
	for body, n := range count {
		assert.Equal(t, 1, n, "%q delivered once", body)
	}
	assert.Equal(t, len(want), caughtUp(t, e.br.LogPath()), "all of them found in Twilio's message log")

	// The reply's final status, which the bridge never received, came from Twilio.
	require.Eventually(t, func() bool {
		return laterQueryInt(t, e.db, "SELECT COUNT(*) FROM outbound_message WHERE message_sid='"+reply.SID+"' AND status='delivered'") == 1
	}, 30*time.Second, 200*time.Millisecond, "the reply is delivered in the bridge's records")
}

// waitBodies waits until the nurse has seen every body of want.
func waitBodies(ctx context.Context, nurse *testenv.StaffAgent, want map[string][2]int) error {
	for {
		seen := map[string]bool{}
		for _, m := range nurse.Messages() {
			seen[m.Body] = true
		}
		missing := 0
		for body := range want {
			if !seen[body] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d texts not seen: %w", missing, len(want), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// caughtUp sums the texts the bridge logged as found in Twilio's message log.
func caughtUp(t *testing.T, logPath string) int {
	f, err := os.Open(logPath)
	require.NoError(t, err)
	defer f.Close()
	total := 0
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		if !strings.Contains(scanner.Text(), "Stored texts from Twilio's message log") {
			continue
		}
		var line struct {
			Count int `json:"count"`
		}
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &line))
		total += line.Count
	}
	return total
}
