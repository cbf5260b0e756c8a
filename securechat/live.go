package securechat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
)

// Several processes serve the patient pages over one PostgreSQL database: the bridge and
// any number of web replicas (`carebridge web`). A change one of them makes (a staff
// message the bridge stored, a message the patient sent on a replica) is signalled to the
// others' pages through PostgreSQL (LISTEN/NOTIFY), and what a patient does on a replica
// that the bridge must act on is handed to it through the database (handoff.go).

const (
	// liveChannel carries "<process> <conversation tag>": a conversation changed; or
	// "<process> <conversation tag> typing <1|0> <staff tag> <name>": a staff member started
	// (or renewed) or stopped typing there.
	liveChannel = "carebridge_securechat_live"
	// handoffChannel wakes the bridge: a replica stored something for it to act on.
	handoffChannel = "carebridge_securechat_handoff"
)

// Share connects the service to the other processes on the database at uri (the
// PostgreSQL connection string, database.uri). It does nothing on SQLite, which one
// process holds. The bridge's service (with a Backend) also listens for hand-offs.
// Stop ends it.
func (s *Service) Share(ctx context.Context, uri string) error {
	if !s.DB.Shared() {
		return nil
	}
	log := zerolog.Ctx(ctx).With().Str("component", "secure chat signals").Logger()
	channels := []string{liveChannel}
	if s.Backend != nil {
		channels = append(channels, handoffChannel)
	}
	listener, err := s.DB.Listen(uri, log, channels...)
	if err != nil {
		return err
	}
	origin := make([]byte, 8)
	_, _ = rand.Read(origin)
	self := hex.EncodeToString(origin)
	ctx, cancel := context.WithCancel(log.WithContext(context.WithoutCancel(ctx)))
	s.live = &liveState{listener: listener, cancel: cancel, done: make(chan struct{}), self: self, ctx: ctx}
	s.Hub.setShare(s.liveTag, func(tag string) {
		if err := s.DB.Notify(ctx, liveChannel, self+" "+tag); err != nil {
			log.Err(err).Msg("Failed to signal a secure chat change to the other processes")
		}
	})
	go func() {
		defer close(s.live.done)
		for signal := range listener.Signals() {
			switch {
			case signal.Reconnected:
				// Signals sent while the connection was down are lost: look at everything.
				s.Hub.publishedAll()
				s.wakeHandoffs()
			case signal.Channel == liveChannel:
				s.heard(signal.Payload)
			case signal.Channel == handoffChannel:
				s.wakeHandoffs()
			}
		}
	}()
	return nil
}

// liveTag names a conversation ("login/portal") in the signals: a keyed hash, since
// PostgreSQL may log what NOTIFY carries.
func (s *Service) liveTag(conv string) string { return s.Keys.Hash("live", conv)[:24] }

// heard acts on a signal of liveChannel from another process.
func (s *Service) heard(payload string) {
	parts := strings.SplitN(payload, " ", 6)
	switch {
	case len(parts) < 2 || parts[0] == s.live.self:
	case len(parts) == 2:
		s.Hub.published(parts[1])
	case len(parts) == 6 && parts[2] == "typing":
		s.Hub.typedElsewhere(parts[1], parts[4], parts[5], parts[3] == "1", s.now())
	}
}

// shareTyping tells the other processes that a staff member typed (or stopped): their
// pages show it too. The staff member is named by a keyed hash of their Matrix ID, and by
// the name the patient sees.
func (s *Service) shareTyping(conv *database.Conversation, key, name string, typing bool) {
	if s.live == nil {
		return
	}
	state := "0"
	if typing {
		state = "1"
	}
	tag := s.liveTag(conv.LoginID + "/" + conv.PortalID)
	payload := s.live.self + " " + tag + " typing " + state + " " + s.Keys.Hash("typist", key)[:16] + " " + name
	if err := s.DB.Notify(s.live.ctx, liveChannel, payload); err != nil {
		zerolog.Ctx(s.live.ctx).Err(err).Msg("Failed to signal staff typing to the other processes")
	}
}

// liveState is the listener of a shared service.
type liveState struct {
	listener *database.Listener
	cancel   context.CancelFunc
	done     chan struct{}
	self     string          // this process in the signals
	ctx      context.Context // the signals' (carries the logger)
}

// SignalsReady checks the connection that receives the other processes' signals (nil
// when the service is not shared).
func (s *Service) SignalsReady() error {
	if s.live == nil {
		return nil
	}
	return s.live.listener.Ping()
}

// Stop ends what Share and StartHandoffs started.
func (s *Service) Stop() {
	s.handoffs.Stop()
	if s.live != nil {
		s.live.listener.Close()
		s.live.cancel()
		<-s.live.done
	}
}
