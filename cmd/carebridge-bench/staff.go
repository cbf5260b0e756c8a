package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/staffclient"
)

// staff is the nurse in mautrix-go's client with end-to-end encryption (goolm), as Element
// would be. It records when /sync delivers each encrypted timeline event. It does not need
// to decrypt the patients' texts to see that they arrived: an m.room.encrypted event from
// a patient's ghost in the timeline is one bridged text.
type staff struct {
	*staffclient.Client

	joining map[id.RoomID]bool
	joined  map[id.RoomID]bool
	// ghostRoom is each patient ghost's room; arrivals the /sync times of the ghosts'
	// encrypted events per room, in timeline order.
	ghostRoom map[id.UserID]id.RoomID
	arrivals  map[id.RoomID][]time.Time
	// ownSeen is when /sync echoed each of the nurse's own events.
	ownSeen map[id.EventID]time.Time
	// statusEvents counts the bridge's com.beeper.message_send_status events in every room
	// (matrix.message_status_events): each is a room event the homeserver carries.
	statusEvents int
}

func newStaff(ctx context.Context, hsURL, localpart, password string) (*staff, error) {
	c, err := staffclient.Login(ctx, staffclient.Options{HomeserverURL: hsURL, Localpart: localpart, Password: password,
		DeviceName: "carebridge bench", PickleKey: "carebridge bench pickle key"}) // decrypting is not measured
	if err != nil {
		return nil, err
	}
	s := &staff{Client: c, joining: map[id.RoomID]bool{}, joined: map[id.RoomID]bool{}, ghostRoom: map[id.UserID]id.RoomID{},
		arrivals: map[id.RoomID][]time.Time{}, ownSeen: map[id.EventID]time.Time{}}
	client := c.Matrix
	syncer := client.Syncer.(*mautrix.DefaultSyncer)
	// A limited timeline would drop events when many arrive between two syncs.
	syncer.FilterJSON = &mautrix.Filter{
		Room:     &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 1000}},
		Presence: &mautrix.FilterPart{NotTypes: []event.Type{{Type: "*"}}},
	}
	syncer.OnEventType(event.StateMember, func(_ context.Context, evt *event.Event) {
		if evt.GetStateKey() != client.UserID.String() {
			return
		}
		switch evt.Content.AsMember().Membership {
		case event.MembershipInvite:
			s.join(evt.RoomID)
		case event.MembershipJoin:
			s.Update(func() { s.joined[evt.RoomID] = true })
		}
	})
	syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceTimeline == 0 {
			return
		}
		now := time.Now()
		s.Update(func() {
			switch {
			case evt.Sender == client.UserID:
				if _, ok := s.ownSeen[evt.ID]; !ok {
					s.ownSeen[evt.ID] = now
				}
			case strings.HasPrefix(evt.Sender.Localpart(), "sms_"):
				s.ghostRoom[evt.Sender] = evt.RoomID
				s.arrivals[evt.RoomID] = append(s.arrivals[evt.RoomID], now)
			}
		})
	})
	syncer.OnEventType(event.BeeperMessageStatus, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceTimeline != 0 {
			s.Update(func() { s.statusEvents++ })
		}
	})
	c.StartSync()
	return s, nil
}

// join accepts an invitation (the bridge invites staff to each new conversation) once.
func (s *staff) join(roomID id.RoomID) {
	s.Mu.Lock()
	already := s.joining[roomID]
	s.joining[roomID] = true
	s.Mu.Unlock()
	if already {
		return
	}
	go func() {
		for attempt := 0; attempt < 5; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := s.Matrix.JoinRoomByID(ctx, roomID)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
}

func (s *staff) close() { s.Close(false) }

// arrivalCounts is how many ghost events each room has had so far.
func (s *staff) arrivalCounts() map[id.RoomID]int {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := make(map[id.RoomID]int, len(s.arrivals))
	for room, a := range s.arrivals {
		out[room] = len(a)
	}
	return out
}

// createEncryptedRoom makes a room with only the nurse, for the baseline.
func (s *staff) createEncryptedRoom(ctx context.Context, name string) (id.RoomID, error) {
	resp, err := s.Matrix.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name:   name,
		Preset: "private_chat",
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("failed to create baseline room: %w", err)
	}
	return resp.RoomID, nil
}

// send sends a text; it is encrypted since every room here is.
func (s *staff) send(ctx context.Context, roomID id.RoomID, body string) (id.EventID, error) {
	resp, err := s.Matrix.SendText(ctx, roomID, body)
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}
