package conversation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Scheduled follow-ups (`!sms later`): staff write a message now for the patient to get
// later. It is sealed at rest until due, then sent by the conversation's mode at that time,
// at most once: a message is claimed (pending → sending) before it goes out, and a claim
// whose outcome was never recorded (a crash mid-send) is reported to staff, not resent.

const (
	// followUpPoll is how often the scheduler looks for due messages; scheduling one also
	// wakes it at once.
	followUpPoll = 2 * time.Second
	// followUpMinWait keeps the scheduler from spinning on a due message it has to skip.
	followUpMinWait = 250 * time.Millisecond
	// followUpLoginGrace is how long after start-up a due message waits for its clinic
	// number to be loaded before it fails as not linked.
	followUpLoginGrace = time.Minute
	// followUpSendTimeout bounds one send, which a shutdown lets finish.
	followUpSendTimeout = 2 * time.Minute
	// followUpBatch is how many due messages are read at a time.
	followUpBatch = 20
)

var (
	// ErrNoFollowUp is returned by CancelFollowUp for a number not scheduled in the
	// conversation.
	ErrNoFollowUp = errors.New("no such scheduled message in this conversation")
	// errUnchanged rolls back the audit row of a change that did not happen (the row was
	// not in the state the change expects).
	errUnchanged = errors.New("scheduled message not in the expected state")
)

// TooManySegmentsError refuses a follow-up that would be texted as more SMS segments
// than the clinic allows.
type TooManySegmentsError struct {
	Segments, Limit int
	Encoding        sms.Encoding
}

func (e *TooManySegmentsError) Error() string {
	return fmt.Sprintf("this text would be %d SMS segments (%s), more than the limit of %d; shorten it or split it",
		e.Segments, e.Encoding, e.Limit)
}

// NotCancellableError refuses to cancel a follow-up that is no longer pending.
type NotCancellableError struct{ State database.ScheduledState }

func (e *NotCancellableError) Error() string {
	return "it is " + workflow.DescribeScheduledState(e.State)
}

// FollowUps schedules follow-ups and sends them when they are due by the clock.
type FollowUps struct {
	S    *Service
	Keys *securechat.Keyring
	Now  func() time.Time
	// Linked reports whether a clinic number is linked and loaded; a due message waits
	// for it up to a minute after StartedAt, then fails as not linked.
	Linked    func(loginID string) bool
	StartedAt time.Time

	loop *loop.Loop
}

// Schedule seals text for the conversation and stores it to be sent at sendAt, audited.
// createdBy is the staff member's Matrix ID. In SMS mode the text, signed as the patient
// will see it, is checked now against the segment limit while staff can shorten it (and
// again when it is sent).
func (f *FollowUps) Schedule(ctx context.Context, conv *database.Conversation, createdBy string,
	sendAt time.Time, text string) (*database.ScheduledMessage, error) {
	if conv.Mode == database.ModeSMS {
		if segments, enc := sms.CountSegments(f.S.Rooms.StaffName(ctx, conv, createdBy) + ": " + text); segments > f.S.Config.MaxSegments {
			return nil, &TooManySegmentsError{Segments: segments, Encoding: enc, Limit: f.S.Config.MaxSegments}
		}
	}
	keyID, sealed, err := f.Keys.Seal([]byte(text), securechat.MessageAdditional(conv.LoginID, conv.PortalID, securechat.ScheduledPart))
	if err != nil {
		return nil, fmt.Errorf("failed to seal the scheduled message: %w", err)
	}
	m := &database.ScheduledMessage{LoginID: conv.LoginID, PortalID: conv.PortalID, CreatedBy: createdBy,
		CreatedAt: f.Now(), SendAt: sendAt, KeyID: keyID, Body: sealed}
	entry := audit(conv, m.Actor(), database.EventFollowUpScheduled, "")
	err = f.S.DB.Audited(ctx, entry, func(ctx context.Context) error {
		if err := f.S.DB.Scheduled().Insert(ctx, m); err != nil {
			return err
		}
		entry.Detail = fmt.Sprintf("#%d for %s", m.ID, sendAt.UTC().Format(time.RFC3339))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.loop != nil {
		f.loop.Wake()
	}
	return m, nil
}

// Location is the clinic's time zone, in which staff write and read the times.
func (f *FollowUps) Location() *time.Location {
	return workflow.ClinicLocation(&f.S.Config.BusinessHours)
}

// List returns the conversation's pending follow-ups with their texts opened.
func (f *FollowUps) List(ctx context.Context, conv *database.Conversation) ([]workflow.LaterEntry, error) {
	pending, err := f.S.DB.Scheduled().ListPending(ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		return nil, err
	}
	entries := make([]workflow.LaterEntry, len(pending))
	for i, m := range pending {
		entries[i].Message = m
		if text, err := f.open(m); err == nil {
			entries[i].Text = text
		} else {
			entries[i].Unreadable = err.Error()
		}
	}
	return entries, nil
}

// Cancel cancels a pending follow-up of the conversation, audited. It returns
// ErrNoFollowUp or a *NotCancellableError when there is nothing to cancel.
func (f *FollowUps) Cancel(ctx context.Context, conv *database.Conversation, actor database.AuditActor, n int64) error {
	err := f.S.DB.Audited(ctx, audit(conv, actor, database.EventFollowUpCancelled, "#"+strconv.FormatInt(n, 10)),
		func(ctx context.Context) error {
			cancelled, err := f.S.DB.Scheduled().Cancel(ctx, n, conv.LoginID, conv.PortalID)
			if err == nil && !cancelled {
				return errUnchanged
			}
			return err
		})
	if !errors.Is(err, errUnchanged) {
		return err
	}
	m, err := f.S.DB.Scheduled().Get(ctx, n)
	switch {
	case err != nil:
		return err
	case m == nil || m.LoginID != conv.LoginID || m.PortalID != conv.PortalID:
		return ErrNoFollowUp
	}
	return &NotCancellableError{State: m.State}
}

// open opens a scheduled message's sealed text.
func (f *FollowUps) open(m *database.ScheduledMessage) (string, error) {
	plain, err := f.Keys.Open(m.KeyID, m.Body, securechat.MessageAdditional(m.LoginID, m.PortalID, securechat.ScheduledPart))
	if errors.Is(err, securechat.ErrUnknownKey) {
		return "", fmt.Errorf("it was sealed with the key %q, which this bridge no longer has", m.KeyID)
	} else if err != nil {
		return "", errors.New("its sealed text is damaged")
	}
	return string(plain), nil
}

// Start reports the follow-ups a stop interrupted, then sends follow-ups as they fall
// due; Stop lets a send in progress finish (so no claim is left without its outcome).
func (f *FollowUps) Start(ctx context.Context) {
	f.failInterrupted(ctx)
	f.loop = loop.Start(ctx, f.Now, followUpPoll, followUpMinWait, func(ctx context.Context) (time.Time, bool) {
		f.sendDue(ctx)
		next, ok, err := f.S.DB.Scheduled().NextDue(ctx)
		if err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to read the next scheduled message")
		}
		return next, ok && err == nil
	})
}

// Wake makes the scheduler look for due messages now (after the clock moved).
func (f *FollowUps) Wake() {
	if f.loop != nil {
		f.loop.Wake()
	}
}

// Stop ends the scheduler (nothing when it was not started).
func (f *FollowUps) Stop() {
	if f.loop != nil {
		f.loop.Stop()
	}
}

// failInterrupted reports the messages that were being sent when the bridge stopped
// without recording the outcome. They are not sent again: Twilio may or may not have
// taken the text, and a clinical text twice (a second "take 2 tablets") is worse than a
// missing one that staff are told about and can resend.
func (f *FollowUps) failInterrupted(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	sending, err := f.S.DB.Scheduled().ListSending(ctx)
	if err != nil {
		log.Err(err).Msg("Failed to look for interrupted scheduled messages")
		return
	}
	for _, m := range sending {
		text, openErr := f.open(m)
		const reason = "interrupted: the bridge stopped while sending it"
		conv := &database.Conversation{LoginID: m.LoginID, PortalID: m.PortalID}
		entry := audit(conv, m.Actor(), database.EventFollowUpSent, fmt.Sprintf("#%d %s", m.ID, reason))
		entry.Outcome = database.OutcomeUnknown
		err = f.S.DB.Audited(ctx, entry, func(ctx context.Context) error {
			finished, err := f.S.DB.Scheduled().Finish(ctx, m.ID, database.ScheduledFailed, f.Now(), reason)
			if err == nil && !finished {
				return errUnchanged
			}
			return err
		})
		if errors.Is(err, errUnchanged) {
			continue
		} else if err != nil {
			log.Err(err).Int64("scheduled_id", m.ID).Msg("Failed to record an interrupted scheduled message")
			continue
		}
		log.Warn().Int64("scheduled_id", m.ID).Str("portal_id", m.PortalID).
			Msg("A scheduled message was interrupted while being sent; staff are asked to check it")
		notice := fmt.Sprintf("⚠️ Scheduled message %d may not have reached the patient: the bridge stopped while sending it. "+
			"It is not sent again automatically, so that the patient never gets it twice: check with the patient and resend it if needed.", m.ID)
		if openErr == nil {
			notice += " The text was: " + text
		}
		f.S.Rooms.Notice(ctx, conv, notice)
	}
}

// sendDue sends every message due by the clock.
func (f *FollowUps) sendDue(ctx context.Context) {
	for ctx.Err() == nil {
		due, err := f.S.DB.Scheduled().GetDue(ctx, f.Now(), followUpBatch)
		if err != nil {
			if ctx.Err() == nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to read due scheduled messages")
			}
			return
		}
		handled := 0
		for _, m := range due {
			if ctx.Err() != nil {
				return
			}
			// A send in progress is finished even when the bridge is stopping.
			sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followUpSendTimeout)
			if f.send(sendCtx, m) {
				handled++
			}
			cancel()
		}
		if handled == 0 || len(due) < followUpBatch {
			return
		}
	}
}

// send sends one due message; false when it was left for later (its clinic number is not
// loaded yet) or another sender claimed it.
func (f *FollowUps) send(ctx context.Context, m *database.ScheduledMessage) bool {
	log := zerolog.Ctx(ctx).With().Int64("scheduled_id", m.ID).Str("login_id", m.LoginID).Str("portal_id", m.PortalID).Logger()
	ctx = log.WithContext(ctx)
	linked := f.Linked(m.LoginID)
	if !linked && time.Since(f.StartedAt) < followUpLoginGrace {
		log.Debug().Msg("Scheduled message waits for its clinic number to be loaded")
		return false
	}
	claimed, err := f.S.DB.Scheduled().Claim(ctx, m.ID)
	if err != nil {
		log.Err(err).Msg("Failed to claim a scheduled message")
		return false
	} else if !claimed {
		return false
	}
	text, err := f.open(m)
	if err != nil {
		f.finish(ctx, m, "", err.Error(), "")
		return true
	}
	if !linked {
		f.finish(ctx, m, "", SendErrorWords(outbox.ErrNotLinked), text)
		return true
	}
	conv, err := f.S.DB.Conversation.Get(ctx, m.LoginID, m.PortalID)
	if err != nil || conv == nil {
		log.Err(err).Msg("Failed to read the conversation of a scheduled message")
		f.finish(ctx, m, "", "its conversation could not be read", text)
		return true
	}
	name := f.S.Rooms.StaffName(ctx, conv, m.CreatedBy)
	sent, err := f.S.Send(ctx, conv, Outgoing{Actor: m.Actor(), Sender: name, Text: text,
		Body: name + ": " + text, Kind: outbox.KindFollowUp})
	switch {
	case err != nil && conv.Mode == database.ModeSecure:
		log.Err(err).Msg("Failed to store a scheduled message for the secure chat")
		f.finish(ctx, m, "", "it could not be stored for the secure chat", text)
		return true
	case err != nil:
		log.Err(err).Msg("Failed to text a scheduled message")
		f.finish(ctx, m, "", SendErrorWords(err), text)
		return true
	case sent.Via == database.ModeSecure:
		f.finish(ctx, m, "secure", "", text)
		return true
	}
	f.S.TrackOnNotice(ctx, sent.SMS, f.finish(ctx, m, "sms", "", text))
	// Not a reply to a waiting patient: a follow-up staff wrote in advance does not end a
	// wait nor count in the response times.
	return true
}

// finish records a claimed message's outcome (sent by "sms" or "secure", or failed for
// reason) with its audit row, and tells the room. It returns the notice's event ID.
func (f *FollowUps) finish(ctx context.Context, m *database.ScheduledMessage, via, reason, text string) string {
	log := zerolog.Ctx(ctx)
	state, outcome, detail := database.ScheduledSent, database.OutcomeOK, fmt.Sprintf("#%d by %s", m.ID, via)
	if via == "" {
		state, outcome, detail = database.ScheduledFailed, database.OutcomeFailed, fmt.Sprintf("#%d: %s", m.ID, reason)
	}
	conv := &database.Conversation{LoginID: m.LoginID, PortalID: m.PortalID}
	entry := audit(conv, m.Actor(), database.EventFollowUpSent, detail)
	entry.Outcome = outcome
	err := f.S.DB.Audited(ctx, entry, func(ctx context.Context) error {
		_, err := f.S.DB.Scheduled().Finish(ctx, m.ID, state, f.Now(), reason)
		return err
	})
	if err != nil {
		// Left as sending: the next start reports it to staff instead of sending it again.
		log.Err(err).Str("outcome", string(outcome)).Msg("Failed to record the outcome of a scheduled message")
	}
	var notice string
	switch via {
	case "sms":
		log.Info().Msg("Sent a scheduled message by SMS")
		notice = fmt.Sprintf("Scheduled message %d sent: %s", m.ID, text)
	case "secure":
		log.Info().Msg("Put a scheduled message into the secure chat")
		notice = fmt.Sprintf("🔒 Scheduled message %d sent to the secure chat: %s", m.ID, text)
	default:
		log.Warn().Str("reason", reason).Msg("A scheduled message could not be sent")
		notice = fmt.Sprintf("⚠️ Scheduled message %d was not sent: %s.", m.ID, reason)
		if text != "" {
			notice += " The text was: " + text
		}
	}
	return f.S.Rooms.Notice(ctx, conv, notice)
}

// TrackOnNotice records a text the bridge sent on its own (a follow-up, an integration's
// message) under the room notice that shows it, so that Twilio's delivery updates show on
// the notice as they do on a staff message. It returns the text's status.
func (s *Service) TrackOnNotice(ctx context.Context, sent *sms.SentMessage, noticeID string) string {
	status := sent.Status
	if status == "" {
		status = "queued"
	}
	if noticeID == "" {
		return status
	}
	// The outbox recorded the text when Twilio accepted it; the notice came after.
	if err := s.DB.Outbound.SetEvent(ctx, sent.SID, noticeID, s.BotMXID); err != nil {
		zerolog.Ctx(ctx).Err(err).Str("message_sid", sent.SID).Msg("Failed to record a text the bridge sent")
	}
	return status
}
