package securechat

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
)

// What a patient does on a web replica that the bridge must act on reaches it through the
// database, so that nothing is lost when the bridge is down or restarting:
//   - a message: the sealed row, without its Matrix event until the bridge puts it into
//     the room (the same rows a failed delivery leaves for RedeliverPending);
//   - a code: the request, stored within the limits like any code but without a hash
//     (database.NewPendingCode); the bridge makes the code, stores its hash and texts it, so
//     that no process but the one that texts it ever holds the code;
//   - a reading: secure_read_pending, shown in the room as the ghost's read receipt.
// A replica then signals the bridge (NOTIFY), whose pass also runs every handoffPoll.

// handoffPoll is how often the bridge looks for hand-offs it was not signalled. A
// variable so that tests can show that a signal, not the poll, brought one.
var handoffPoll = 5 * time.Second

// readingLifetime bounds how long the bridge keeps trying to show a reading.
const readingLifetime = time.Hour

// handoffBatch is how many hand-offs of each kind one read of the database takes.
const handoffBatch = 50

// handoffState is the bridge side of the hand-offs: its pass, and which conversation's
// messages are being put into the room.
type handoffState struct {
	startedAt  time.Time
	mu         sync.Mutex
	delivering map[string]*convLock
	// tried holds the messages this process tried to deliver without success.
	tried map[int64]bool
}

type convLock struct {
	sync.Mutex
	refs int
}

// handOff tells the bridge that this replica stored something for it.
func (s *Service) handOff(ctx context.Context) {
	if err := s.DB.Notify(ctx, handoffChannel, ""); err != nil {
		// The bridge's pass finds it within handoffPoll anyway.
		zerolog.Ctx(ctx).Err(err).Msg("Failed to signal the bridge")
	}
}

// wakeHandoffs runs the bridge's pass now.
func (s *Service) wakeHandoffs() { s.handoffs.Wake() }

// StartHandoffs starts the bridge's pass over what web replicas handed to it: codes to
// text, messages to put into their rooms, readings to show. Only the bridge calls it
// (the service needs its Backend); Stop ends it.
func (s *Service) StartHandoffs(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str("component", "secure chat hand-offs").Logger()
	s.handoff.mu.Lock()
	s.handoff.startedAt = s.now()
	s.handoff.mu.Unlock()
	s.handoffs = loop.Start(log.WithContext(ctx), s.Now, handoffPoll, 0, func(ctx context.Context) (time.Time, bool) {
		s.DrainHandoffs(ctx)
		return time.Time{}, false
	})
}

// DrainHandoffs acts once on everything web replicas handed to the bridge.
func (s *Service) DrainHandoffs(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	if err := s.textPendingCodes(ctx); err != nil {
		log.Err(err).Msg("Failed to text the codes patients asked for")
	}
	if n, err := s.RedeliverPending(ctx, 0); err != nil {
		log.Err(err).Msg("Failed to put secure chat messages into their rooms; will retry")
	} else if n > 0 {
		log.Debug().Int("count", n).Msg("Put secure chat messages from web replicas into their rooms")
	}
	if err := s.showPendingReadings(ctx); err != nil {
		log.Err(err).Msg("Failed to show patients' readings in their rooms; will retry")
	}
}

// ---- codes ----------------------------------------------------------------------

// textCode makes the code of a pending request, stores its hash and texts it. It does
// nothing when another pass claimed the request first.
func (s *Service) textCode(ctx context.Context, conv *database.Conversation, req *database.SecureCode, lang string) error {
	code, err := randomCode()
	if err != nil {
		return err
	}
	// The hash is stored before the code is texted: a code that reached the phone always works.
	if filled, err := s.DB.Code.Fill(ctx, req, s.Keys.Hash("code", code)); err != nil {
		return fmt.Errorf("failed to store the code: %w", err)
	} else if !filled {
		return nil
	}
	err = s.Backend.SendSMS(ctx, conv, CodeText(lang, s.ClinicName, code, codeHost(s.PublicBase), s.Config.CodeLifetime))
	s.metrics().CodeSent(err)
	if err != nil {
		s.auditAlone(ctx, database.PatientLinkActor, conv, database.EventCodeSent, database.OutcomeFailed, "")
		return fmt.Errorf("failed to text the code: %w", err)
	}
	s.auditAlone(ctx, database.PatientLinkActor, conv, database.EventCodeSent, database.OutcomeOK, "")
	return nil
}

// handoffCodeSenders is how many codes asked for on web replicas are texted at once: each
// waits for Twilio's answer (100-500 ms), and a burst of patients must not wait in a line.
const handoffCodeSenders = 16

// textPendingCodes texts the codes patients asked for on web replicas, in the language of
// the page they asked from (SendCode remembered it), several at once.
func (s *Service) textPendingCodes(ctx context.Context) error {
	now := s.now()
	reqs, err := s.DB.Code.Pending(ctx, now, handoffBatch)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	senders := make(chan struct{}, handoffCodeSenders)
	for _, req := range reqs {
		link, err := s.DB.Link.Get(ctx, req.LinkHash)
		if err != nil {
			return err
		}
		var conv *database.Conversation
		if link != nil && link.RevokedAt.IsZero() && link.LockedAt.IsZero() && now.Before(link.ExpiresAt) {
			if conv, err = s.DB.Conversation.Get(ctx, link.LoginID, link.PortalID); err != nil {
				return err
			}
		}
		if conv == nil {
			// Revoked, locked or expired since the patient asked: nothing is texted.
			if _, err = s.DB.Code.Fill(ctx, req, database.CodeNotSent); err != nil {
				return err
			}
			continue
		}
		senders <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-senders; wg.Done() }()
			if err := s.textCode(ctx, conv, req, Language(conv, s.Config.Language)); err != nil {
				// The patient asks again; the page told them a code is on its way.
				zerolog.Ctx(ctx).Err(err).Msg("Failed to text a code a patient asked for on a web replica")
			}
		}()
	}
	return nil
}

// ---- messages -------------------------------------------------------------------

// lockConversation serialises putting one conversation's messages into its room: the
// request that stored a message and the passes that redeliver never send one twice.
func (s *Service) lockConversation(conv *database.Conversation) func() {
	key := conv.LoginID + "/" + conv.PortalID
	h := &s.handoff
	h.mu.Lock()
	if h.delivering == nil {
		h.delivering = map[string]*convLock{}
	}
	l := h.delivering[key]
	if l == nil {
		l = &convLock{}
		h.delivering[key] = l
	}
	l.refs++
	h.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		h.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(h.delivering, key)
		}
		h.mu.Unlock()
	}
}

// deliver puts a stored patient message into the room through the Backend, once, and
// records its event. delivered is false when another pass had already put it there.
func (s *Service) deliver(ctx context.Context, conv *database.Conversation, msg *Message, data []byte) (eventID string, delivered bool, err error) {
	unlock := s.lockConversation(conv)
	defer unlock()
	if eventID, err = s.DB.Secure.EventID(ctx, msg.ID); err != nil || eventID != "" {
		return eventID, false, err
	}
	h := &s.handoff
	h.mu.Lock()
	// Suspect an earlier try (the message may be in the room already) after one failed
	// here, or when the message is older than this process's pass (one may have been cut
	// short), or with no pass to tell.
	suspect := h.tried[msg.ID] || h.startedAt.IsZero() || msg.CreatedAt.Before(h.startedAt)
	h.mu.Unlock()
	if suspect {
		ctx = context.WithValue(ctx, redeliveryKey{}, true)
	}
	eventID, err = s.Backend.PatientMessage(ctx, conv, msg, data)
	h.mu.Lock()
	if err != nil {
		if h.tried == nil {
			h.tried = map[int64]bool{}
		}
		h.tried[msg.ID] = true
	} else {
		delete(h.tried, msg.ID)
	}
	h.mu.Unlock()
	if err != nil {
		return "", false, err
	}
	if err = s.DB.Secure.SetEventID(ctx, msg.ID, eventID); err != nil {
		return eventID, true, fmt.Errorf("failed to record the Matrix event of a secure message: %w", err)
	}
	return eventID, true, nil
}

// ---- readings -------------------------------------------------------------------

// showPendingReadings shows in the rooms what patients read on web replicas.
func (s *Service) showPendingReadings(ctx context.Context) error {
	due, err := s.DB.ReadPending.Due(ctx, handoffBatch)
	if err != nil {
		return err
	}
	for _, reading := range due {
		conv, err := s.DB.Conversation.Get(ctx, reading.LoginID, reading.PortalID)
		if err != nil {
			return err
		}
		if conv != nil {
			err = s.Backend.PatientRead(ctx, conv, &Message{ID: reading.MessageID, Read: true})
			if err != nil && s.now().Sub(reading.ReadAt) < readingLifetime {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to show a patient's reading in the room; will retry")
				continue
			} else if err != nil {
				zerolog.Ctx(ctx).Err(err).Msg("Gave up showing a patient's reading in the room")
			}
		}
		if err = s.DB.ReadPending.Done(ctx, reading); err != nil {
			return err
		}
	}
	return nil
}
