package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// Twilio does not retry a failed SMS webhook unless told to, and cannot reach a bridge
// that is down: the texts are in its message log all the same. CatchUpInbound reads the
// log of a clinic number from where the last complete read began and hands over the texts
// no webhook stored; CatchUpStatuses looks up the texts the bridge sent whose final status
// never arrived. The bridge decides when they run (catch-up loop, bridge/catchup.go).
//
// Both read real time, not the outbox's clock: the mark is compared with Twilio's dates,
// and the clinic clock is one tests move by days.

const (
	// catchUpMargin is how far before the mark the log is read again: Twilio's clock and
	// the bridge's differ, and Twilio may count whole seconds.
	catchUpMargin = 2 * time.Minute
	// statusOverdue is how long after a text was sent its final status may take before
	// the bridge asks Twilio; statusWindow and statusBatch bound what is asked.
	statusOverdue = 2 * time.Minute
	statusWindow  = 3 * 24 * time.Hour
	statusBatch   = 200
	// catchUpWindow bounds how far back the log is read: a delivered receipt is kept
	// database.ReceiptRetention for de-duplication, and an older text would be stored twice.
	catchUpWindow = database.ReceiptRetention - 24*time.Hour
)

// StoreFunc stores a text of Twilio's message log that no webhook stored, as received at
// at. kept is false for a text that is not for a conversation (it is skipped); an error
// stops the catch-up, which is then tried again from the same mark.
type StoreFunc func(ctx context.Context, m *sms.LoggedMessage, at time.Time) (kept bool, err error)

// CatchUpInbound stores, through store, the texts of the clinic number's inbound message
// log that no receipt holds, oldest first, then moves the number's mark to when the read
// began. number is the clinic number (E.164) of login loginID.
func (o *Outbox) CatchUpInbound(ctx context.Context, loginID, number string, store StoreFunc) error {
	log := zerolog.Ctx(ctx).With().Str("login_id", loginID).Logger()
	began := time.Now()
	mark, ok, err := o.DB.TwilioSync.SyncedUntil(ctx, loginID)
	if err != nil {
		return err
	} else if !ok {
		// A number linked by an earlier version: from its newest stored text, if any.
		if mark, err = o.DB.Receipt.LastReceivedAt(ctx, loginID); err != nil {
			return err
		} else if mark.IsZero() {
			mark = began
		}
	}
	since := mark.Add(-catchUpMargin)
	if oldest := began.Add(-catchUpWindow); since.Before(oldest) {
		log.Warn().Time("mark", mark).Msg("Twilio's message log was last read too long ago: texts older than the receipts kept are not looked for")
		since = oldest
	}
	provider, err := o.Accounts.Provider(ctx, loginID)
	if err != nil {
		return err
	}
	logged, err := provider.ListInbound(ctx, number, since)
	if err != nil {
		return err
	}
	// Each missed text is stored just after the text before it in the log, so that the
	// inbound queue keeps Twilio's order within a conversation (Twilio's dates have whole
	// seconds).
	var previous time.Time
	found := 0
	for _, m := range logged {
		if !m.Received() {
			continue // an MMS still "receiving": a later read finds it received
		}
		stored, err := o.DB.Receipt.Get(ctx, m.SID)
		if err != nil {
			return err
		} else if stored != nil {
			previous = stored.ReceivedAt
			continue
		}
		at := m.DateSent
		if !at.After(previous) {
			at = previous.Add(time.Millisecond)
		}
		kept, err := store(ctx, m, at)
		if err != nil {
			return err
		} else if !kept {
			log.Debug().Str("message_sid", m.SID).Msg("Text in Twilio's message log is not for a conversation; skipped")
			continue
		}
		previous = at
		found++
	}
	if found > 0 {
		log.Info().Int("count", found).Time("since", since).Msg("Stored texts from Twilio's message log that no webhook had stored")
	}
	return o.DB.TwilioSync.Advance(ctx, loginID, began)
}

// CatchUpStatuses asks Twilio for the status of the clinic number's texts whose final
// status never arrived, and hands each that advances to apply as its status callback
// would have been. A text sent before startedAt (when this process began taking status
// callbacks) is asked about at once: its callbacks went to a process that is gone.
func (o *Outbox) CatchUpStatuses(ctx context.Context, loginID string, startedAt time.Time,
	apply func(ctx context.Context, cb *sms.StatusCallback) error) error {
	now := time.Now()
	before := now.Add(-statusOverdue)
	if startedAt.After(before) {
		before = startedAt
	}
	texts, err := o.DB.Outbound.Unfinished(ctx, loginID, now.Add(-statusWindow), before, statusBatch)
	if err != nil || len(texts) == 0 {
		return err
	}
	provider, err := o.Accounts.Provider(ctx, loginID)
	if err != nil {
		return err
	}
	updated := 0
	for _, out := range texts {
		m, err := provider.FetchMessage(ctx, out.MessageSID)
		if errors.Is(err, sms.ErrMessageNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if !sms.StatusSupersedes(m.Status, out.Status) {
			continue
		}
		cb := &sms.StatusCallback{MessageSID: m.SID, AccountSID: m.AccountSID, From: m.From, To: m.To, Status: m.Status, ErrorCode: m.ErrorCode}
		log := zerolog.Ctx(ctx).With().Str("message_sid", m.SID).Str("message_status", m.Status).Logger()
		if err = apply(log.WithContext(ctx), cb); err != nil {
			return err
		}
		updated++
	}
	if updated > 0 {
		zerolog.Ctx(ctx).Info().Str("login_id", loginID).Int("count", updated).
			Msg("Applied statuses from Twilio whose callbacks never arrived")
	}
	return nil
}
