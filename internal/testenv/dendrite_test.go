package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDendriteNioE2EE proves the harness does real end-to-end encryption with an
// independent client: two nio agents talk in an encrypted room on a fresh Dendrite.
func TestDendriteNioE2EE(t *testing.T) {
	RequireDep(t, DepNio, NioAvailable())
	runNioE2EE(t, NewDendrite(t))
}

func runNioE2EE(t *testing.T, hs Homeserver) {
	started := time.Now()
	hs.Start()
	t.Logf("%s ready on %s in %s", hs.Kind(), hs.URL(), time.Since(started).Round(time.Millisecond))

	nurse := hs.CreateUser(t, "nurse", "correct-horse-battery")
	doctor := hs.CreateUser(t, "doctor", "staple-battery-horse")
	require.Equal(t, "@nurse:localhost", nurse)

	started = time.Now()
	a := StartStaffAgent(t, hs.URL(), nurse, "correct-horse-battery")
	b := StartStaffAgent(t, hs.URL(), doctor, "staple-battery-horse")
	t.Logf("Two staff agents ready in %s (devices %s, %s)", time.Since(started).Round(time.Millisecond), a.DeviceID, b.DeviceID)
	require.NotEmpty(t, a.DeviceID)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	roomID, err := a.CreateRoom(ctx, []string{doctor}, true)
	require.NoError(t, err)
	_, err = b.WaitInvite(ctx, roomID)
	require.NoError(t, err)
	_, err = b.WaitJoined(ctx, roomID)
	require.NoError(t, err)

	const greeting = "Good morning, this is the triage nurse"
	roundTrip := time.Now()
	eventID, sentAt, err := a.Send(ctx, roomID, greeting)
	require.NoError(t, err)
	got, err := b.WaitMessage(ctx, func(m AgentMessage) bool { return m.EventID == eventID })
	require.NoError(t, err)
	assert.True(t, got.Encrypted, "message must arrive encrypted")
	assert.Equal(t, greeting, got.Body)
	assert.Equal(t, nurse, got.Sender)
	assert.Equal(t, "m.text", got.MsgType)
	t.Logf("Nurse -> doctor: %s from send to decrypted", got.ReceivedAt().Sub(sentAt))

	const reply = "Morning! Send the patient to room 4, please."
	replyID, replySentAt, err := b.Send(ctx, roomID, reply)
	require.NoError(t, err)
	gotReply, err := a.WaitMessage(ctx, func(m AgentMessage) bool { return m.EventID == replyID })
	require.NoError(t, err)
	assert.True(t, gotReply.Encrypted, "reply must arrive encrypted")
	assert.Equal(t, reply, gotReply.Body)
	assert.Equal(t, doctor, gotReply.Sender)
	t.Logf("Doctor -> nurse: %s from send to decrypted", gotReply.ReceivedAt().Sub(replySentAt))
	t.Logf("Round trip (nurse sends, doctor decrypts and replies, nurse decrypts): %s", time.Since(roundTrip).Round(time.Millisecond))

	assert.Empty(t, a.Undecryptable())
	assert.Empty(t, b.Undecryptable())
	assert.Empty(t, a.Errors())
	assert.Empty(t, b.Errors())
}
