package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// staff is the nurse in mautrix-go's client with end-to-end encryption (goolm), as Element
// would be. It records when /sync delivers each encrypted timeline event. It does not need
// to decrypt the patients' texts to see that they arrived: an m.room.encrypted event from
// a patient's ghost in the timeline is one bridged text.
type staff struct {
	client   *mautrix.Client
	helper   *cryptohelper.CryptoHelper
	storeDir string
	cancel   context.CancelFunc
	syncDone chan struct{}

	mu      sync.Mutex
	changed chan struct{}
	syncErr error
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
	client, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		return nil, err
	}
	storeDir, err := os.MkdirTemp("", "carebridge-bench-staff-")
	if err != nil {
		return nil, err
	}
	s := &staff{client: client, storeDir: storeDir, changed: make(chan struct{}), syncDone: make(chan struct{}),
		joining: map[id.RoomID]bool{}, joined: map[id.RoomID]bool{}, ghostRoom: map[id.UserID]id.RoomID{},
		arrivals: map[id.RoomID][]time.Time{}, ownSeen: map[id.EventID]time.Time{}}
	helper, err := cryptohelper.NewCryptoHelper(client, []byte("carebridge bench pickle key"), storeDir+"/crypto.db")
	if err != nil {
		_ = os.RemoveAll(storeDir)
		return nil, fmt.Errorf("failed to set up encryption: %w", err)
	}
	helper.LoginAs = &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: "carebridge bench",
	}
	helper.DecryptErrorCallback = func(*event.Event, error) {} // decrypting is not measured
	s.helper = helper
	if err = helper.Init(ctx); err != nil {
		_ = helper.Close()
		_ = os.RemoveAll(storeDir)
		return nil, fmt.Errorf("failed to sign in as %s with encryption: %w", localpart, err)
	}
	client.Crypto = helper

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
			s.update(func() { s.joined[evt.RoomID] = true })
		}
	})
	syncer.OnEventType(event.EventEncrypted, func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceTimeline == 0 {
			return
		}
		now := time.Now()
		s.update(func() {
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
			s.update(func() { s.statusEvents++ })
		}
	})
	syncCtx, stop := context.WithCancel(context.Background())
	s.cancel = stop
	go func() {
		defer close(s.syncDone)
		if err := client.SyncWithContext(syncCtx); err != nil && syncCtx.Err() == nil {
			s.update(func() { s.syncErr = err })
		}
	}()
	return s, nil
}

// join accepts an invitation (the bridge invites staff to each new conversation) once.
func (s *staff) join(roomID id.RoomID) {
	s.mu.Lock()
	already := s.joining[roomID]
	s.joining[roomID] = true
	s.mu.Unlock()
	if already {
		return
	}
	go func() {
		for attempt := 0; attempt < 5; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := s.client.JoinRoomByID(ctx, roomID)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
}

func (s *staff) close() {
	if s.cancel != nil {
		s.cancel()
		s.client.StopSync()
		select {
		case <-s.syncDone:
		case <-time.After(10 * time.Second):
		}
	}
	_ = s.helper.Close()
	_ = os.RemoveAll(s.storeDir)
}

func (s *staff) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait returns once cond (called under the lock) holds.
func (s *staff) wait(ctx context.Context, what string, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, changed, syncErr := cond(), s.changed, s.syncErr
		s.mu.Unlock()
		switch {
		case ok:
			return nil
		case syncErr != nil:
			return fmt.Errorf("the staff client stopped syncing while waiting for %s: %w", what, syncErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: %w", what, ctx.Err())
		}
	}
}

// arrivalCounts is how many ghost events each room has had so far.
func (s *staff) arrivalCounts() map[id.RoomID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[id.RoomID]int, len(s.arrivals))
	for room, a := range s.arrivals {
		out[room] = len(a)
	}
	return out
}

// createEncryptedRoom makes a room with only the nurse, for the baseline.
func (s *staff) createEncryptedRoom(ctx context.Context, name string) (id.RoomID, error) {
	resp, err := s.client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
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
	resp, err := s.client.SendText(ctx, roomID, body)
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}
