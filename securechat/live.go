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
	// liveChannel carries "<process> <conversation tag>": a conversation changed.
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
	s.live = &liveState{listener: listener, cancel: cancel, done: make(chan struct{})}
	// A conversation is named by a keyed hash: PostgreSQL may log what NOTIFY carries.
	s.Hub.setShare(func(conv string) string { return s.Keys.Hash("live", conv)[:24] }, func(tag string) {
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
				if from, tag, ok := strings.Cut(signal.Payload, " "); ok && from != self {
					s.Hub.published(tag)
				}
			case signal.Channel == handoffChannel:
				s.wakeHandoffs()
			}
		}
	}()
	return nil
}

// liveState is the listener of a shared service.
type liveState struct {
	listener *database.Listener
	cancel   context.CancelFunc
	done     chan struct{}
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
