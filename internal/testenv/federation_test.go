package testenv

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestDendriteFederation proves that three Dendrites on loopback federate over HTTPS
// and that m.room.server_acl shuts one of them out: the hospital (A) shares a room with
// a partner clinic (B); a third server (C) is denied by the room's ACL.
func TestDendriteFederation(t *testing.T) { runFederation(t, HomeserverDendrite) }

// TestSynapseFederation is TestDendriteFederation on three Synapses.
func TestSynapseFederation(t *testing.T) { runFederation(t, HomeserverSynapse) }

// aclRefusal is how each homeserver refuses a server the room's ACL denies.
var aclRefusal = map[string]string{HomeserverDendrite: "Forbidden by server ACLs", HomeserverSynapse: "Server is banned from room"}

func runFederation(t *testing.T, kind string) {
	hospital := NewFederatedHomeserver(t, kind, FederationOptions{Host: "127.0.0.1"})
	clinic := NewFederatedHomeserver(t, kind, FederationOptions{Host: "127.0.0.2"})
	outside := NewFederatedHomeserver(t, kind, FederationOptions{Host: "127.0.0.3"})
	started := time.Now()
	StartHomeservers(t, hospital, clinic, outside)
	t.Logf("Three %ss ready in %s: %s, %s, %s", kind, time.Since(started).Round(time.Millisecond),
		hospital.ServerName(), clinic.ServerName(), outside.ServerName())
	require.Equal(t, "127.0.0.2", clinic.Host())
	require.Regexp(t, `^127\.0\.0\.2:\d+$`, clinic.ServerName())

	const password = "correct-horse-battery"
	nurseID := id.UserID(hospital.CreateUser(t, "nurse", password))
	doctorID := id.UserID(clinic.CreateUser(t, "doctor", password))
	locumID := id.UserID(outside.CreateUser(t, "locum", password))
	strangerID := id.UserID(outside.CreateUser(t, "stranger", password))
	pharmacistID := id.UserID(hospital.CreateUser(t, "pharmacist", password))
	require.Equal(t, id.UserID("@doctor:"+clinic.ServerName()), doctorID)
	nurse := newWatcher(hospital.Login(t, "nurse", password))
	doctor := newWatcher(clinic.Login(t, "doctor", password))
	locum := newWatcher(outside.Login(t, "locum", password))
	stranger := newWatcher(outside.Login(t, "stranger", password))

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// The server name with its port as well: Synapse refuses to send an ACL that does
	// not match it (appservice.Federation.ServerACL); it matches no host.
	acl := &event.ServerACLEventContent{Allow: []string{hospital.Host(), clinic.Host(), hospital.ServerName()}, AllowIPLiterals: true}

	t.Run("JoinAndMessage", func(t *testing.T) {
		step := time.Now()
		roomID := nurse.createRoom(t, ctx, "Referral")
		nurse.invite(t, ctx, roomID, doctorID)
		doctor.join(t, ctx, roomID, hospital.ServerName())
		t.Logf("Doctor on B joined A's room over federation in %s", time.Since(step).Round(time.Millisecond))

		step = time.Now()
		msg := nurse.send(t, ctx, roomID, "Referral for the patient in bed 4")
		got := doctor.wait(t, ctx, "the nurse's message", func(e *event.Event) bool { return e.ID == msg })
		assert.Equal(t, nurseID, got.Sender)
		assert.Equal(t, "Referral for the patient in bed 4", got.Content.Raw["body"])
		t.Logf("A -> B message in %s", time.Since(step).Round(time.Millisecond))

		reply := doctor.send(t, ctx, roomID, "Seen, thank you")
		nurse.wait(t, ctx, "the doctor's reply", func(e *event.Event) bool { return e.ID == reply })
	})

	t.Run("ACLDeniesJoin", func(t *testing.T) {
		roomID := nurse.createRoom(t, ctx, "Referral (ACL)")
		nurse.invite(t, ctx, roomID, doctorID)
		doctor.join(t, ctx, roomID, hospital.ServerName())
		aclID := nurse.setState(t, ctx, roomID, event.StateServerACL, acl)
		doctor.wait(t, ctx, "the server ACL", func(e *event.Event) bool { return e.ID == aclID })

		// A still sends the invite to the denied server (ACLs govern what a server
		// accepts, not what it sends); the join is what fails: C is not in the room, so
		// it must ask A (make_join), which refuses it.
		nurse.invite(t, ctx, roomID, strangerID)
		_, joinErr := stranger.c.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{hospital.ServerName(), clinic.ServerName()}})
		require.Error(t, joinErr, "a user on a server the ACL denies must not join")
		assert.ErrorIs(t, joinErr, mautrix.MForbidden)
		assert.ErrorContains(t, joinErr, aclRefusal[kind])
		members, err := nurse.c.JoinedMembers(ctx, roomID)
		require.NoError(t, err)
		assert.NotContains(t, members.Joined, strangerID)
		assert.Contains(t, members.Joined, doctorID)

		// The allowed server still takes part.
		msg := doctor.send(t, ctx, roomID, "Still here after the ACL")
		nurse.wait(t, ctx, "B's message after the ACL", func(e *event.Event) bool { return e.ID == msg })
	})

	t.Run("ACLDropsEventsOfMember", func(t *testing.T) {
		// C joins before the ACL; afterwards A and B must drop what C sends.
		roomID := nurse.createRoom(t, ctx, "Referral (member denied later)")
		nurse.invite(t, ctx, roomID, doctorID)
		nurse.invite(t, ctx, roomID, locumID)
		doctor.join(t, ctx, roomID, hospital.ServerName())
		locum.join(t, ctx, roomID, hospital.ServerName())
		hello := locum.send(t, ctx, roomID, "Locum here before the ACL")
		nurse.wait(t, ctx, "C's message before the ACL", func(e *event.Event) bool { return e.ID == hello })
		doctor.wait(t, ctx, "C's message before the ACL", func(e *event.Event) bool { return e.ID == hello })

		aclID := nurse.setState(t, ctx, roomID, event.StateServerACL, acl)
		doctor.wait(t, ctx, "the server ACL", func(e *event.Event) bool { return e.ID == aclID })
		locum.wait(t, ctx, "the server ACL", func(e *event.Event) bool { return e.ID == aclID })

		denied, err := locum.c.SendText(ctx, roomID, "Locum here after the ACL")
		require.NoError(t, err, "C accepts its own user's message (its server does not check itself)")
		// C sends each destination its PDUs and EDUs in order: once A and B have a
		// to-device message the locum sent after it (no room, so no ACL applies; Synapse
		// drops the room's typing notices from C as well), they have handled (and
		// dropped) the message.
		barrier := event.Type{Type: "com.carebridge.test.barrier", Class: event.ToDeviceEventType}
		for _, w := range []*watcher{nurse, doctor} {
			_, err = locum.c.SendToDevice(ctx, barrier, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
				w.c.UserID: {"*": {Raw: map[string]any{"after": denied.EventID.String()}}},
			}})
			require.NoError(t, err)
		}
		isBarrier := func(e *event.Event) bool {
			return e.Type.Type == barrier.Type && e.Sender == locumID && e.Content.Raw["after"] == denied.EventID.String()
		}
		nurse.wait(t, ctx, "the locum's to-device message", isBarrier)
		doctor.wait(t, ctx, "the locum's to-device message", isBarrier)
		time.Sleep(time.Second) // PDUs and EDUs of one transaction are handled side by side

		// An invite the denied server sends is refused by the invitee's server.
		_, err = locum.c.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: pharmacistID})
		assert.Error(t, err, "A must refuse an invite from a server the room's ACL denies")
		assert.ErrorIs(t, err, mautrix.MForbidden)
		assert.ErrorContains(t, err, aclRefusal[kind])

		allowed := doctor.send(t, ctx, roomID, "Doctor here after the ACL")
		nurse.wait(t, ctx, "B's message after the ACL", func(e *event.Event) bool { return e.ID == allowed })
		for _, w := range []*watcher{nurse, doctor} {
			assert.False(t, w.saw(func(e *event.Event) bool { return e.ID == denied.EventID }),
				"%s must not see the message from the denied server", w.c.UserID)
			_, err := w.c.GetEvent(ctx, roomID, denied.EventID)
			assert.True(t, errors.Is(err, mautrix.MNotFound), "%s must not have stored the denied event: %v", w.c.UserID, err)
		}
	})
}

// watcher reads a client's /sync and keeps every room event and typing notice it saw.
type watcher struct {
	c      *mautrix.Client
	since  string
	events []*event.Event
	ids    map[id.EventID]bool
}

func newWatcher(c *mautrix.Client) *watcher {
	return &watcher{c: c, ids: map[id.EventID]bool{}}
}

// Dendrite sometimes leaves a just-joined room out of an incremental /sync; after this
// long without a match the watcher syncs from scratch.
const watcherResyncAfter = 3 * time.Second

func (w *watcher) poll(ctx context.Context, timeout time.Duration) error {
	resp, err := w.c.SyncRequest(ctx, int(timeout.Milliseconds()), w.since, "", w.since == "", "")
	if err != nil {
		return err
	}
	w.since = resp.NextBatch
	w.events = append(w.events, resp.ToDevice.Events...)
	for roomID, room := range resp.Rooms.Join {
		for _, list := range [][]*event.Event{room.State.Events, room.Timeline.Events, room.Ephemeral.Events} {
			for _, e := range list {
				e.RoomID = roomID
				if e.ID != "" {
					if w.ids[e.ID] {
						continue
					}
					w.ids[e.ID] = true
				}
				w.events = append(w.events, e)
			}
		}
	}
	return nil
}

func (w *watcher) saw(match func(*event.Event) bool) bool {
	return slices.ContainsFunc(w.events, match)
}

// wait syncs until an event that match accepts has been seen, and returns it.
func (w *watcher) wait(t testing.TB, ctx context.Context, what string, match func(*event.Event) bool) *event.Event {
	t.Helper()
	lastFresh := time.Now()
	for {
		if i := slices.IndexFunc(w.events, match); i >= 0 {
			return w.events[i]
		}
		if time.Since(lastFresh) > watcherResyncAfter {
			w.since, lastFresh = "", time.Now()
		}
		if err := w.poll(ctx, 500*time.Millisecond); err != nil {
			t.Fatalf("%s saw no %s: %v", w.c.UserID, what, err)
		}
	}
}

func (w *watcher) createRoom(t testing.TB, ctx context.Context, name string) id.RoomID {
	t.Helper()
	resp, err := w.c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: name})
	require.NoError(t, err, "create room")
	return resp.RoomID
}

func (w *watcher) invite(t testing.TB, ctx context.Context, roomID id.RoomID, userID id.UserID) {
	t.Helper()
	_, err := w.c.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: userID})
	require.NoError(t, err, "invite %s", userID)
}

// join joins over federation through via; Dendrite answers once the join is done.
func (w *watcher) join(t testing.TB, ctx context.Context, roomID id.RoomID, via string) {
	t.Helper()
	_, err := w.c.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{via}})
	require.NoError(t, err, "%s joins %s", w.c.UserID, roomID)
}

func (w *watcher) send(t testing.TB, ctx context.Context, roomID id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := w.c.SendText(ctx, roomID, body)
	require.NoError(t, err, "%s sends", w.c.UserID)
	return resp.EventID
}

func (w *watcher) setState(t testing.TB, ctx context.Context, roomID id.RoomID, evtType event.Type, content any) id.EventID {
	t.Helper()
	resp, err := w.c.SendStateEvent(ctx, roomID, evtType, "", content)
	require.NoError(t, err, "%s sets %s", w.c.UserID, evtType.Type)
	return resp.EventID
}

// TestDendriteFederationNioE2EE proves the nio staff agent works with server names that
// are IP literals with a port, and that E2EE (device lists, key claims, to-device
// messages) crosses federation: a nurse on A and a doctor on B talk in an encrypted room.
func TestDendriteFederationNioE2EE(t *testing.T) {
	RequireDep(t, DepNio, NioAvailable())
	hospital := NewFederatedDendrite(t, FederationOptions{Host: "127.0.0.1"})
	clinic := NewFederatedDendrite(t, FederationOptions{Host: "127.0.0.2"})
	StartDendrites(t, hospital, clinic)
	runFederationNioE2EE(t, hospital, clinic)
}

// TestSynapseFederationNioE2EE is TestDendriteFederationNioE2EE on two Synapses.
func TestSynapseFederationNioE2EE(t *testing.T) {
	RequireDep(t, DepNio, NioAvailable())
	hospital := NewFederatedSynapse(t, FederationOptions{Host: "127.0.0.1"})
	clinic := NewFederatedSynapse(t, FederationOptions{Host: "127.0.0.2"})
	StartHomeservers(t, hospital, clinic)
	runFederationNioE2EE(t, hospital, clinic)
}

func runFederationNioE2EE(t *testing.T, hospital, clinic Homeserver) {
	nurseID := hospital.CreateUser(t, "nurse", "correct-horse-battery")
	doctorID := clinic.CreateUser(t, "doctor", "staple-battery-horse")
	nurse := StartStaffAgent(t, hospital.URL(), nurseID, "correct-horse-battery")
	doctor := StartStaffAgent(t, clinic.URL(), doctorID, "staple-battery-horse")
	require.Equal(t, nurseID, nurse.UserID)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	roomID, err := nurse.CreateRoom(ctx, []string{doctorID}, true)
	require.NoError(t, err)
	_, err = doctor.WaitJoined(ctx, roomID)
	require.NoError(t, err)

	step := time.Now()
	const body = "Referral: patient in bed 4, see notes"
	eventID, _, err := nurse.Send(ctx, roomID, body)
	require.NoError(t, err)
	got, err := doctor.WaitMessage(ctx, func(m AgentMessage) bool { return m.EventID == eventID })
	require.NoError(t, err)
	assert.True(t, got.Encrypted, "the message must cross federation encrypted")
	assert.Equal(t, body, got.Body)
	assert.Equal(t, nurseID, got.Sender)
	t.Logf("Encrypted A -> B over federation: %s", time.Since(step).Round(time.Millisecond))

	replyID, _, err := doctor.Send(ctx, roomID, "Seen, on my way")
	require.NoError(t, err)
	reply, err := nurse.WaitMessage(ctx, func(m AgentMessage) bool { return m.EventID == replyID })
	require.NoError(t, err)
	assert.True(t, reply.Encrypted)
	assert.Empty(t, nurse.Undecryptable())
	assert.Empty(t, doctor.Undecryptable())
	assert.Empty(t, nurse.Errors())
	assert.Empty(t, doctor.Errors())
}
