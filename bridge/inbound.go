package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
)

// dueBatch is how many stored texts are delivered per database read.
const dueBatch = 50

// rereadAfter is how soon the queue reads the database again for texts that came in
// while it delivered others.
const rereadAfter = 100 * time.Millisecond

// inFlightSettle is how long after this process started a text the previous process may
// have been sending is looked for in the room before it is sent again.
const inFlightSettle = 5 * time.Second

// inboundQueue delivers stored inbound texts into Matrix, oldest first, retrying with
// backoff until each is in its room. It resumes from the database after a restart.
type inboundQueue struct {
	c      *Connector
	wakeCh chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func newInboundQueue(c *Connector) *inboundQueue {
	return &inboundQueue{c: c, wakeCh: make(chan struct{}, 1), done: make(chan struct{})}
}

// wake makes the queue look for due texts now (nothing before it exists: a standby
// process stores texts for the active one's queue).
func (q *inboundQueue) wake() {
	if q == nil {
		return
	}
	select {
	case q.wakeCh <- struct{}{}:
	default:
	}
}

func (q *inboundQueue) stop() {
	q.once.Do(func() {
		if q.cancel != nil {
			q.cancel()
			<-q.done
		}
	})
}

func (q *inboundQueue) run(ctx context.Context) {
	ctx, q.cancel = context.WithCancel(ctx)
	defer close(q.done)
	log := q.c.Bridge.Log.With().Str("component", "inbound queue").Logger()
	ctx = log.WithContext(ctx)
	for {
		q.deliverDue(ctx)
		q.redeliverSecure(ctx)
		var timer <-chan time.Time
		next, pending, err := q.c.DB.Receipt.NextDue(ctx)
		if err != nil {
			log.Err(err).Msg("Failed to read the inbound queue")
			timer = time.After(q.c.Config.Inbound.RetryInterval)
		} else if pending {
			timer = time.After(max(time.Until(next), 0))
		} else {
			// Secure chat messages waiting for the room are looked for at this pace.
			timer = time.After(q.c.Config.Inbound.RetryInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wakeCh:
		case <-timer:
		}
	}
}

// redeliverSecure puts patient messages from the secure chat that missed the room into it.
func (q *inboundQueue) redeliverSecure(ctx context.Context) {
	if q.c.Secure == nil {
		return
	}
	n, err := q.c.Secure.RedeliverPending(ctx, q.c.Config.Inbound.RetryInterval)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to redeliver secure chat messages; will retry")
	} else if n > 0 {
		zerolog.Ctx(ctx).Info().Int("count", n).Msg("Redelivered secure chat messages into their rooms")
	}
}

// deliverDue delivers due texts until none is left, up to inbound.concurrency
// conversations at a time and one text at a time within each: the database hands out only
// the oldest pending text of a conversation, and the next one becomes due when it is
// delivered (a failed one holds back the rest of its conversation until its retry).
func (q *inboundQueue) deliverDue(ctx context.Context) {
	type outcome struct {
		conversation string
		recorded     bool
	}
	workers := max(q.c.Config.Inbound.Concurrency, 1)
	done := make(chan outcome, workers)
	inFlight := make(map[string]bool, workers)
	// next holds the heads of conversations read but not started yet; reading the
	// database again only when it runs out keeps the reads to about one per batch.
	// A new webhook can bring the head of another conversation: it is read with the next
	// batch, or at most rereadAfter after the last read when texts keep coming in.
	var next []*database.Receipt
	var lastRead time.Time
	stalled, stale := false, false
	defer func() {
		for range inFlight {
			<-done
		}
	}()
	for {
		if !stalled && ctx.Err() == nil && len(inFlight) < workers {
			if len(next) == 0 || (stale && time.Since(lastRead) >= rereadAfter) {
				next, stale, lastRead = nil, false, time.Now()
				due, err := q.c.DB.Receipt.GetDue(ctx, time.Now(), dueBatch)
				if err != nil {
					zerolog.Ctx(ctx).Err(err).Msg("Failed to read due inbound texts")
					stalled = true
				}
				// The head of a conversation being delivered is read again until it is
				// marked delivered: leave it to that delivery.
				for _, r := range due {
					if !inFlight[conversationOf(r)] {
						next = append(next, r)
					}
				}
			}
			for len(next) > 0 && len(inFlight) < workers {
				r := next[0]
				next = next[1:]
				conversation := conversationOf(r)
				inFlight[conversation] = true
				go func() {
					_, recorded := q.deliver(ctx, r)
					done <- outcome{conversation, recorded}
				}()
			}
		}
		if len(inFlight) == 0 {
			return
		}
		// A delivery finishing makes its conversation's next text due; a new webhook
		// may bring texts of other conversations.
		select {
		case res := <-done:
			delete(inFlight, res.conversation)
			// An outcome the database could not store stops the pass rather than spin.
			stalled = stalled || !res.recorded
		case <-q.wakeCh:
			stale = true
		}
	}
}

// conversationOf names the conversation of a stored text within the queue.
func conversationOf(r *database.Receipt) string { return r.LoginID + "/" + r.PatientPhone }

// deliver tries one stored text and records the outcome. recorded is false when the
// outcome could not be stored, to stop rather than spin on it.
func (q *inboundQueue) deliver(ctx context.Context, r *database.Receipt) (ok, recorded bool) {
	log := logCtx(*zerolog.Ctx(ctx), r)
	err := q.c.deliverInbound(log.WithContext(ctx), r)
	q.c.metrics.InboundDelivery(err == nil)
	if err == nil {
		if err = q.c.DB.Receipt.MarkDelivered(ctx, r.MessageSID, time.Now()); err != nil {
			log.Err(err).Msg("Failed to mark inbound text delivered; it will be delivered again and de-duplicated")
			return true, false
		}
		return true, true
	}
	backoff := q.c.Config.Inbound.RetryInterval << min(r.Attempts, 20)
	backoff = min(backoff, q.c.Config.Inbound.MaxRetryInterval)
	log.Err(err).Int("attempt", r.Attempts+1).Dur("retry_in", backoff).Msg("Failed to deliver inbound text into Matrix; will retry")
	if err = q.c.DB.Receipt.MarkRetry(ctx, r.MessageSID, err.Error(), time.Now().Add(backoff)); err != nil {
		log.Err(err).Msg("Failed to record inbound delivery attempt")
		return false, false
	}
	return false, true
}

// deliverInbound puts one stored text into its conversation room, creating the room and
// inviting the staff first, so that their devices receive the message's keys.
func (c *Connector) deliverInbound(ctx context.Context, r *database.Receipt) error {
	login := c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(r.LoginID))
	if login == nil {
		return fmt.Errorf("clinic number %s is not linked", r.LoginID)
	}
	in, err := sms.ParseInbound(r.Params)
	if err != nil {
		return fmt.Errorf("stored webhook no longer parses: %w", err)
	}
	key := MakePortalKey(r.PatientPhone, login.ID)
	portal, err := c.ensureConversation(ctx, login, r.PatientPhone)
	if err != nil {
		return err
	}
	ghost, err := c.patientGhost(ctx, r.PatientPhone)
	if err != nil {
		return err
	}
	// A text stored before this process started may have been in flight when it stopped.
	suspect := r.Attempts > 0 || r.ReceivedAt.Before(c.startedAt)
	if r.ReceivedAt.Before(c.startedAt) {
		// The homeserver may still be handling a send whose client (the previous process)
		// went away: Dendrite puts such an event into the room a second or more later
		// under load (measured in TestFailoverUnderLoad, where a standby takes over in
		// about a second). Look for it in the room only once that has settled.
		if wait := time.Until(c.startedAt.Add(inFlightSettle)); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	send, err := c.prepareStableSend(ctx, login, portal, ghost, in.MessageSID, r.ReceivedAt, suspect)
	if err != nil {
		return err
	}
	if sms.ParseKeyword(in.Body) == sms.KeywordNone {
		c.Responses.Waiting(ctx, string(login.ID), string(portal.ID))
	}
	res := c.queueAndWait(ctx, login, &simplevent.Message[*sms.Inbound]{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventMessage,
			PortalKey: key,
			Sender:    bridgev2.EventSender{Sender: ghost.ID},
			Timestamp: r.ReceivedAt,
			LogContext: func(lc zerolog.Context) zerolog.Context {
				return lc.Str("message_sid", r.MessageSID)
			},
			MutateContextFunc: func(ctx context.Context) context.Context {
				return withStableSend(ctx, send)
			},
			CreatePortal: true,
		},
		Data: in,
		ID:   networkid.MessageID(in.MessageSID),
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, in *sms.Inbound) (*bridgev2.ConvertedMessage, error) {
			return login.Client.(*Client).convertInbound(ctx, portal, intent, in, r.Attempts)
		},
	})
	if !res.Success || res.Queued {
		if !res.Success {
			c.forgetPartialDelivery(ctx, login, in.MessageSID)
		}
		if res.Error != nil {
			return res.Error
		}
		return errNotDelivered
	}
	// bridgev2 reports some Matrix refusals (e.g. M_FORBIDDEN while the homeserver shuts
	// down) as "ignored"; only a stored message row proves the text reached the room.
	part, err := c.Bridge.DB.Message.GetFirstPartByID(ctx, login.ID, networkid.MessageID(in.MessageSID))
	if err != nil {
		return fmt.Errorf("failed to check delivery: %w", err)
	} else if part == nil {
		return errNotDelivered
	}
	if err = c.handleKeyword(ctx, login, portal, in); err != nil {
		return err
	}
	c.remindSecure(ctx, login, portal, in)
	if sms.ParseKeyword(in.Body) == sms.KeywordNone {
		c.onPatientText(ctx, portal, in.Body)
		c.apiEvent(ctx, portal, func(conv *database.Conversation) {
			c.API.PatientReplied(ctx, conv, database.ModeSMS, in.Body, len(in.Media))
		})
	}
	return nil
}

// remindSecure answers a patient who texts while the conversation is secure: their text
// is in the room, and replies come through the secure link (at most once per quiet period).
func (c *Connector) remindSecure(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, in *sms.Inbound) {
	conv, err := c.DB.Conversation.Get(ctx, string(login.ID), string(portal.ID))
	if err != nil || conv == nil || conv.Mode != database.ModeSecure || conv.OptedOut || sms.ParseKeyword(in.Body) != sms.KeywordNone {
		return
	}
	// Kept apart from the alert's quiet period, so a reminder never holds back an alert.
	key := conv.LoginID + "/" + conv.PortalID
	if last, ok := c.reminded.Load(key); ok && time.Since(last.(time.Time)) < c.Config.SecureChat.AlertQuietPeriod {
		return
	}
	c.reminded.Store(key, time.Now())
	text := securechat.ReminderText(securechat.Language(conv, c.Config.SecureChat.Language), c.Config.ClinicName)
	if err = c.Conversations.Text(ctx, conv, outbox.KindReminder, text, ""); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to text secure mode reminder")
	}
}

// ensureConversation returns the conversation room of a patient at a clinic number,
// creating the conversation, the room, and the staff invites when they do not exist yet.
// Staff are invited before any message is sent so that their devices receive its keys.
// One caller at a time per conversation (an inbound text, staff's start-chat and the
// integration API can open one at once), so that its room is set up once.
func (c *Connector) ensureConversation(ctx context.Context, login *bridgev2.UserLogin, patientE164 string) (*bridgev2.Portal, error) {
	portal, _, err := c.openConversation(ctx, login, patientE164)
	return portal, err
}

// openConversation is ensureConversation that also says whether this call created the
// conversation.
func (c *Connector) openConversation(ctx context.Context, login *bridgev2.UserLogin, patientE164 string) (*bridgev2.Portal, bool, error) {
	meta := login.Metadata.(*UserLoginMetadata)
	key := MakePortalKey(patientE164, login.ID)
	defer c.setupLocks.WithLock(key)()
	existing, err := c.DB.Conversation.Get(ctx, string(login.ID), string(key.ID))
	if err != nil {
		return nil, false, fmt.Errorf("failed to read conversation: %w", err)
	}
	created := existing == nil
	conv, err := c.DB.Conversation.GetOrCreate(ctx, &database.Conversation{
		LoginID:      string(login.ID),
		PortalID:     string(key.ID),
		ClinicPhone:  meta.Phone,
		PatientPhone: patientE164,
		Mode:         database.Mode(c.Config.SecureChat.DefaultMode),
	})
	if err != nil {
		return nil, false, fmt.Errorf("failed to store conversation: %w", err)
	}
	portal, err := c.Bridge.GetPortalByKey(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("failed to get portal: %w", err)
	}
	if portal.MXID == "" {
		if err = portal.CreateMatrixRoom(ctx, login, nil); err != nil {
			return nil, false, fmt.Errorf("failed to create conversation room: %w", err)
		}
	}
	if !conv.RoomReady {
		if err = c.setupRoom(ctx, login, portal); err != nil {
			return nil, false, err
		}
		c.updateConversationState(ctx, portal, conv)
	}
	return portal, created, nil
}

// setupRoom makes the clinic login the room's relay (so staff without logins reply
// through the clinic number), invites the staff and the teams answering the number, and
// puts the room into the teams' spaces. It runs until it succeeds once.
func (c *Connector) setupRoom(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal) error {
	if portal.Relay == nil {
		if err := portal.SetRelay(ctx, login); err != nil {
			return fmt.Errorf("failed to set the clinic number as relay: %w", err)
		}
	}
	// Before anyone is invited: the room federates only with the allowed servers.
	if err := c.Rooms.SetServerACL(ctx, portal.MXID); err != nil {
		return err
	}
	if err := c.Staff.InviteAll(ctx, c.Bridge.Bot, portal.MXID); err != nil {
		return err
	}
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		return err
	}
	if err = c.Rooms.JoinTeams(ctx, portal.MXID, conv); err != nil {
		return err
	}
	fed := c.Rooms.Federation()
	// After the invites, so that the staff's devices receive the notice's keys.
	if fed.MaskNames {
		if err = c.Rooms.PinPatientNotice(ctx, roomOf(portal), PhoneOf(portal.ID)); err != nil {
			return err
		}
	}
	if err = c.DB.Conversation.SetRoomPolicy(ctx, string(login.ID), string(portal.ID), fed.Policy()); err != nil {
		return err
	}
	return c.DB.Conversation.SetRoomReady(ctx, string(login.ID), string(portal.ID))
}
