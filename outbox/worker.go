package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// dueBatch is how many conversations' next texts are read at once; maxDuePasses bounds
// the reads of one round that skip numbers held back by their pace.
const (
	dueBatch     = 64
	maxDuePasses = 8
)

// stopGrace is how long Stop lets texts already at Twilio finish, so that their answer is
// recorded and they are not sent again after the restart.
const stopGrace = 5 * time.Second

// settleSkew is how long before a text's last attempt began Twilio's log is searched for
// it: Twilio's clock may differ from ours, and its dates have whole seconds.
const settleSkew = time.Minute

// Start starts the workers. Texts a stopped process was sending when it stopped are
// looked up in Twilio's message log first: one Twilio accepted is recorded, not sent again.
func (o *Outbox) Start(ctx context.Context) error {
	orphans, err := o.DB.Outbox.Sending(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the texts being sent when the bridge stopped: %w", err)
	} else if len(orphans) > 0 {
		o.Log.Warn().Int("count", len(orphans)).
			Msg("Texts were being sent when the bridge stopped; looking them up in Twilio's message log before sending them again")
	}
	ctx, o.cancel = context.WithCancel(o.Log.WithContext(ctx))
	go o.run(ctx, orphans)
	return nil
}

// Stop stops taking texts from the queue and waits briefly for the ones at Twilio.
func (o *Outbox) Stop() {
	o.once.Do(func() {
		if o.cancel == nil {
			return
		}
		o.cancel()
		<-o.done
	})
}

// run hands each conversation's next due text to a worker, up to outbox.concurrency
// conversations at once; a conversation's next text becomes due when the one before it
// is finished, so a slow Twilio call holds back only its own conversation.
func (o *Outbox) run(ctx context.Context, orphans []*database.OutboxMessage) {
	defer close(o.done)
	log := zerolog.Ctx(ctx)
	workers := max(o.Config.Outbox.Concurrency, 1)
	finished := make(chan string, workers)
	inFlight := make(map[string]bool, workers)
	// Sends outlive ctx by stopGrace, so a text at Twilio gets its answer recorded.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		grace := time.After(stopGrace)
		for len(inFlight) > 0 {
			select {
			case conv := <-finished:
				delete(inFlight, conv)
			case <-grace:
				cancelSends()
				for range inFlight {
					<-finished
				}
				return
			}
		}
		cancelSends()
	}()
	// A conversation whose text is settled is busy meanwhile: its next texts wait.
	for _, row := range orphans {
		conv := row.LoginID + "/" + row.PortalID
		inFlight[conv] = true
		go func() {
			defer func() { finished <- conv }()
			o.settle(ctx, row)
		}()
	}
	pace := newPacer(o.Config.Outbox.PerNumberRate)
	read := true
	for {
		var paced time.Duration // when a number held back by its pace may send again
		// Numbers held back by their pace are left out of the next read, so that their
		// queued texts do not hide other numbers' behind them.
		var held []string
		for pass := 0; read && len(inFlight) < workers && pass < maxDuePasses; pass++ {
			due, err := o.DB.Outbox.GetDue(ctx, o.Now(), dueBatch, held...)
			if err != nil && ctx.Err() == nil {
				log.Err(err).Msg("Failed to read the outbox")
			}
			heldBefore := len(held)
			for _, row := range due {
				conv := row.LoginID + "/" + row.PortalID
				if inFlight[conv] || len(inFlight) >= workers || slices.Contains(held, row.From) {
					continue
				}
				if wait := pace.take(row.From, time.Now()); wait > 0 {
					if paced == 0 || wait < paced {
						paced = wait
					}
					held = append(held, row.From)
					continue
				}
				inFlight[conv] = true
				go func() {
					defer func() { finished <- conv }()
					o.process(sendCtx, row)
				}()
			}
			if len(due) < dueBatch || len(held) == heldBefore {
				break
			}
		}
		read = false
		var timer <-chan time.Time
		if len(inFlight) < workers { // else a worker finishing comes first
			next, ok, err := o.DB.Outbox.NextDue(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Err(err).Msg("Failed to read the outbox")
				timer = time.After(o.Config.Outbox.RetryInterval)
			case ok:
				wait := next.Sub(o.Now())
				if paced > 0 && wait <= 0 {
					wait = paced // what is due now waits for its number's pace
				}
				timer = time.After(max(wait, time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			return
		case conv := <-finished:
			delete(inFlight, conv)
		case <-o.wakeCh:
		case <-timer:
		}
		// Sends finished and texts queued meanwhile are all seen by the one read that follows.
		for waiting := true; waiting; {
			select {
			case conv := <-finished:
				delete(inFlight, conv)
			case <-o.wakeCh:
			default:
				waiting = false
			}
		}
		read = true
	}
}

// process sends one text and records the outcome.
func (o *Outbox) process(ctx context.Context, row *database.OutboxMessage) {
	log := o.Log.With().Int64("outbox_id", row.ID).Str("kind", row.Kind).Str("portal_id", row.PortalID).Logger()
	ctx = log.WithContext(ctx)
	// The claim reads the sealed body, which GetDue leaves out.
	if claimed, err := o.DB.Outbox.Claim(ctx, row, o.Now()); err != nil || !claimed {
		if err != nil {
			log.Err(err).Msg("Failed to claim a text in the outbox")
		}
		return
	}
	t, err := o.open(row, row.Attempts)
	if err != nil {
		o.fail(ctx, t, 0, err)
		return
	}
	// The patient may have opted out while the text waited.
	if err = o.check(ctx, t); err != nil {
		var refusal *Refusal
		if errors.As(err, &refusal) {
			o.fail(ctx, t, 0, err)
		} else {
			o.retry(ctx, t, 0, err)
		}
		return
	}
	provider, err := o.Accounts.Provider(ctx, t.LoginID)
	if errors.Is(err, ErrNotLinked) {
		o.fail(ctx, t, 0, err)
		return
	} else if err != nil {
		o.retry(ctx, t, 0, err)
		return
	}
	sent, err := provider.Send(ctx, o.message(t))
	if err != nil {
		var sendErr *sms.SendError
		if errors.As(err, &sendErr) && sendErr.Transient() {
			o.retry(ctx, t, sendErr.Code, err)
		} else {
			// Refused, or uncertain (no answer in time): sending again could text it twice.
			code := 0
			if sendErr != nil {
				code = sendErr.Code
			}
			o.fail(ctx, t, code, err)
		}
		return
	}
	err = o.DB.DoTxn(ctx, nil, func(ctx context.Context) error {
		if err := o.DB.Outbox.MarkSent(ctx, t.ID, sent.SID, o.Now()); err != nil {
			return err
		}
		return o.DB.Outbound.Insert(ctx, outboundOf(t, sent, o.Now()))
	})
	if err != nil {
		// Left as sending: the next start sends it again rather than lose it.
		log.Err(err).Str("message_sid", sent.SID).Msg("Failed to record a text Twilio accepted")
	} else {
		log.Debug().Str("message_sid", sent.SID).Int("attempt", t.Attempts).Msg("Sent text")
	}
	o.Hooks.Sent(ctx, t, sent)
}

// open unseals a stored text; attempts is the attempt it is at.
func (o *Outbox) open(row *database.OutboxMessage, attempts int) (*Text, error) {
	t := &Text{ID: row.ID, LoginID: row.LoginID, PortalID: row.PortalID, From: row.From, To: row.To,
		Kind: Kind(row.Kind), EventID: row.EventID, SenderMXID: row.SenderMXID, Attempts: attempts}
	plain, err := o.Sealer.Open(row.KeyID, row.Sealed, additional(t))
	var content stored
	if err == nil {
		err = json.Unmarshal(plain, &content)
	}
	if err != nil {
		return t, fmt.Errorf("failed to open the stored text: %w", err)
	}
	t.Body, t.MediaURLs = content.Body, content.MediaURLs
	return t, nil
}

// settle finds out what became of a text a stopped process was sending: Twilio's
// message log has it (it is recorded as sent, with its MessageSid) or not (it goes
// again in its turn). While Twilio's log cannot be read, the text and the rest of its
// conversation wait; the other conversations go on.
func (o *Outbox) settle(ctx context.Context, row *database.OutboxMessage) {
	log := o.Log.With().Int64("outbox_id", row.ID).Str("kind", row.Kind).Str("portal_id", row.PortalID).Logger()
	ctx = log.WithContext(ctx)
	cfg := o.Config.Outbox
	for attempt := 1; ; attempt++ {
		err := o.settleOnce(ctx, row)
		if err == nil || ctx.Err() != nil {
			return
		}
		wait := min(cfg.RetryInterval<<min(attempt-1, 20), cfg.MaxRetryInterval)
		log.Warn().Err(err).Dur("retry_in", wait).Msg("Failed to look up a text in Twilio's message log; its conversation waits")
		select {
		case <-ctx.Done():
			return // still sending: the next start settles it
		case <-time.After(wait):
		}
	}
}

func (o *Outbox) settleOnce(ctx context.Context, row *database.OutboxMessage) error {
	log := zerolog.Ctx(ctx)
	t, err := o.open(row, row.Attempts)
	if err != nil {
		o.fail(ctx, t, 0, err)
		return nil
	}
	provider, err := o.Accounts.Provider(ctx, t.LoginID)
	if errors.Is(err, ErrNotLinked) {
		o.fail(ctx, t, 0, err)
		return nil
	} else if err != nil {
		return err
	}
	logged, err := provider.ListSent(ctx, t.From, t.To, row.UpdatedAt.Add(-settleSkew))
	if err != nil {
		return err
	}
	for _, m := range logged {
		if m.Body != t.Body || m.NumMedia != len(t.MediaURLs) {
			continue
		}
		// The same words sent before (another text, or an earlier staff message) are known.
		if known, err := o.DB.Outbound.Get(ctx, m.SID); err != nil {
			return err
		} else if known != nil {
			continue
		}
		// Recorded as Twilio first answered; the status catch-up brings it up to date.
		sent := &sms.SentMessage{SID: m.SID, Status: "queued"}
		err = o.DB.DoTxn(ctx, nil, func(ctx context.Context) error {
			if err := o.DB.Outbox.MarkSent(ctx, t.ID, sent.SID, o.Now()); err != nil {
				return err
			}
			return o.DB.Outbound.Insert(ctx, outboundOf(t, sent, row.UpdatedAt))
		})
		if err != nil {
			return fmt.Errorf("failed to record a text found in Twilio's log: %w", err)
		}
		log.Info().Str("message_sid", m.SID).Msg("Twilio had accepted the text before the bridge stopped; recorded, not sent again")
		o.Hooks.Sent(ctx, t, sent)
		return nil
	}
	if err = o.DB.Outbox.Requeue(ctx, t.ID, o.Now()); err != nil {
		return fmt.Errorf("failed to put a text back in line: %w", err)
	}
	log.Info().Msg("Text not in Twilio's message log; sending it again")
	return nil
}

// retry puts a text Twilio certainly did not accept back in line, or gives it up after
// outbox.max_attempts.
func (o *Outbox) retry(ctx context.Context, t *Text, code int, err error) {
	cfg := o.Config.Outbox
	if t.Attempts >= cfg.MaxAttempts {
		o.fail(ctx, t, code, err)
		return
	}
	wait := min(cfg.RetryInterval<<min(t.Attempts-1, 20), cfg.MaxRetryInterval)
	// Up to a fifth either way, so texts refused together do not come back together.
	wait += time.Duration((rand.Float64()*0.4 - 0.2) * float64(wait))
	zerolog.Ctx(ctx).Warn().Err(err).Int("attempt", t.Attempts).Dur("retry_in", wait).Msg("Text not sent; will retry")
	if err = o.DB.Outbox.MarkRetry(ctx, t.ID, o.Now().Add(wait), code, err.Error(), o.Now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record a text's retry")
	}
}

// fail gives a text up and tells the hooks once.
func (o *Outbox) fail(ctx context.Context, t *Text, code int, err error) {
	zerolog.Ctx(ctx).Warn().Err(err).Int("attempt", t.Attempts).Int("twilio_code", code).Msg("Text not sent")
	changed, dbErr := o.DB.Outbox.MarkFailed(ctx, t.ID, code, err.Error(), o.Now())
	if dbErr != nil {
		zerolog.Ctx(ctx).Err(dbErr).Msg("Failed to record a text that was not sent")
	} else if !changed {
		return
	}
	o.Hooks.Failed(ctx, t, err)
}
