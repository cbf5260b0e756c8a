package main

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestRedeliveryAfterCrash reproduces the window a crash leaves: the homeserver stored a
// patient's text (and an MMS's parts) but the bridge died before recording it, and the
// homeserver restarted too, forgetting the transaction IDs it had seen. After the restart
// the bridge must find the events in the room and not post them a second time.
func TestRedeliveryAfterCrash(t *testing.T) { eachHomeserver(t, runRedeliveryAfterCrash) }

func runRedeliveryAfterCrash(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	ghost := e.patientGhost(t, ctx, patient)

	first, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Is the clinic open on Friday?")
	require.NoError(t, err)
	require.Equal(t, 200, first.StatusCode, first.Body)
	photo := testJPEG(t)
	mms, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Photo of the dressing", e.fake.AddMedia("image/jpeg", photo))
	require.NoError(t, err)
	require.Equal(t, 200, mms.StatusCode, mms.Body)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.RoomID == roomID && m.MsgType == "m.image" })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := pendingReceipts(e.db)
		return err == nil && n == 0
	}, 30*time.Second, 100*time.Millisecond, "both texts are marked delivered")

	// The crash: the bridge dies, its records of the two messages are gone and their
	// receipts pending again; the homeserver restarts with an empty transaction cache.
	e.br.Kill()
	sids := fmt.Sprintf("'%s', '%s'", first.MessageSID, mms.MessageSID)
	require.NoError(t, execSQL(e.db,
		"DELETE FROM message WHERE id IN ("+sids+")",
		"UPDATE inbound_receipt SET state='pending', delivered_at=NULL, next_attempt_at=0 WHERE message_sid IN ("+sids+")"))
	e.hs.Stop()
	e.hs.Restart()
	e.br.Restart()

	// A later text is delivered after the two (order is kept per conversation).
	later, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Thanks, see you then")
	require.NoError(t, err)
	require.Equal(t, 200, later.StatusCode, later.Body)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Thanks, see you then" })
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := pendingReceipts(e.db)
		return err == nil && n == 0
	}, 30*time.Second, 100*time.Millisecond, "every receipt is marked delivered again")
	time.Sleep(2 * time.Second) // a second copy would arrive within the nurse's sync

	var bodies []string
	for _, m := range nurse.Messages() {
		if m.Sender == ghost {
			bodies = append(bodies, m.MsgType+" "+m.Body)
		}
	}
	assert.Equal(t, []string{"m.text Is the clinic open on Friday?", "m.text Photo of the dressing",
		"m.image " + imageBody(t, nurse, roomID), "m.text Thanks, see you then"}, bodies,
		"each part exactly once, in order")

	log, err := os.ReadFile(e.br.LogPath())
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(log), "already in the room from an earlier attempt"),
		"the bridge recognised the three parts already in the room")
}

// imageBody is the body of the one image in the room (its file name).
func imageBody(t *testing.T, a *testenv.StaffAgent, roomID string) string {
	for _, m := range a.Messages() {
		if m.RoomID == roomID && m.MsgType == "m.image" {
			return m.Body
		}
	}
	t.Fatal("no image in the room")
	return ""
}

// execSQL runs statements on the bridge's database (test-built SQL, no parameters).
func execSQL(spec testenv.DBSpec, statements ...string) error {
	driver := "postgres"
	if spec.Type != "postgres" {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, spec.URI)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range statements {
		if _, err = db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
