package integration

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// Event types an integration receives.
const (
	EventPatientReplied     = "patient.replied"
	EventMessageRead        = "message.read"
	EventOptedOut           = "patient.opted_out"
	EventOptedIn            = "patient.opted_in"
	EventConversationClosed = "conversation.closed"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
// With events.standard_webhooks, a delivery is signed the Standard Webhooks way too
// (standardwebhooks.Webhook.Sign: webhook-id, webhook-timestamp, webhook-signature).
const SignatureHeader = "Carebridge-Signature"

// Sign is the signature header's value for body at t under secret.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Event is what a receiver gets.
type Event struct {
	ID           string         `json:"id"`
	Type         string         `json:"type"`
	CreatedAt    time.Time      `json:"created_at"`
	Integration  string         `json:"integration"`
	Conversation EventSubject   `json:"conversation"`
	Data         map[string]any `json:"data"`
}

// EventSubject is the conversation an event is about.
type EventSubject struct {
	ID           string `json:"id"`
	ClinicNumber string `json:"clinic_number"`
	PatientPhone string `json:"patient_phone"`
	ExternalID   string `json:"external_id,omitempty"`
}

// PatientReplied queues "patient.replied": a patient's message reached the room (by SMS
// or the secure chat). The text is in the event only for integrations that allow it.
func (s *Server) PatientReplied(ctx context.Context, conv *database.Conversation, via database.Mode, body string, attachments int) {
	s.emit(ctx, conv, EventPatientReplied, func(ic *config.IntegrationConfig) map[string]any {
		data := map[string]any{"via": string(via), "attachments": attachments}
		if ic.Events.IncludeBodies {
			data["body"] = body
		}
		return data
	})
}

// PatientRead marks the API's secure messages up to secureID read and queues
// "message.read" to each integration that sent one of them.
func (s *Server) PatientRead(ctx context.Context, conv *database.Conversation, secureID int64, at time.Time) {
	read, err := s.db.Integration().MarkRead(ctx, conv.LoginID, conv.PortalID, secureID, at)
	if err != nil {
		s.log.Err(err).Msg("Failed to record that the patient read API messages")
		return
	}
	byIntegration := map[string][]string{}
	for _, m := range read {
		byIntegration[m.Integration] = append(byIntegration[m.Integration], m.ID)
	}
	s.emit(ctx, conv, EventMessageRead, func(ic *config.IntegrationConfig) map[string]any {
		ids := byIntegration[ic.Name]
		if len(ids) == 0 {
			return nil
		}
		return map[string]any{"message_ids": ids, "read_at": at.UTC()}
	})
}

// OptedOut queues "patient.opted_out" (STOP) or "patient.opted_in" (START).
func (s *Server) OptedOut(ctx context.Context, conv *database.Conversation, optedOut bool) {
	kind := EventOptedOut
	if !optedOut {
		kind = EventOptedIn
	}
	s.emit(ctx, conv, kind, func(*config.IntegrationConfig) map[string]any { return map[string]any{} })
}

// ConversationClosed queues "conversation.closed" (staff closed it with `!sms close`).
func (s *Server) ConversationClosed(ctx context.Context, conv *database.Conversation, by string) {
	s.emit(ctx, conv, EventConversationClosed, func(*config.IntegrationConfig) map[string]any {
		return map[string]any{"closed_by": by}
	})
}

// emit stores an event for every integration that takes events for the conversation's
// clinic number (data returns nil: not for this one), then wakes their delivery.
func (s *Server) emit(ctx context.Context, conv *database.Conversation, kind string, data func(*config.IntegrationConfig) map[string]any) {
	var apiConv *database.APIConversation
	for i := range s.opts.Integrations {
		ic := &s.opts.Integrations[i]
		if ic.Events.URL == "" || !ic.AllowsNumber(conv.ClinicPhone) {
			continue
		}
		d := data(ic)
		if d == nil {
			continue
		}
		if apiConv == nil {
			var err error
			if apiConv, err = s.apiConversation(ctx, conv); err != nil {
				s.log.Err(err).Str("event_type", kind).Msg("Failed to give a conversation an API ID for an event")
				return
			}
		}
		ev := Event{ID: newID("evt"), Type: kind, CreatedAt: time.Now().UTC(), Integration: ic.Name, Data: d,
			Conversation: EventSubject{ID: apiConv.ID, ClinicNumber: conv.ClinicPhone, PatientPhone: conv.PatientPhone, ExternalID: apiConv.ExternalID}}
		payload, err := json.Marshal(ev)
		if err == nil {
			var keyID string
			var sealed []byte
			if keyID, sealed, err = s.opts.Keys.Seal(payload, eventAdditional(ev.ID)); err == nil {
				err = s.db.Integration().InsertEvent(ctx, &database.APIEvent{EventID: ev.ID, Integration: ic.Name, Type: kind,
					KeyID: keyID, Payload: sealed, CreatedAt: ev.CreatedAt})
			}
		}
		if err != nil {
			s.log.Err(err).Str("integration", ic.Name).Str("event_type", kind).Msg("Failed to queue an integration event")
			continue
		}
		s.events.wake(ic.Name)
	}
}

func eventAdditional(id string) []byte { return []byte("api-event:" + id) }

// eventDelivery POSTs each integration's events in order, one at a time, retrying a
// failed one with backoff (it stays first) until the receiver answers 2xx.
type eventDelivery struct {
	s      *Server
	client *http.Client
	wakeCh map[string]chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newEventDelivery(s *Server) *eventDelivery {
	d := &eventDelivery{s: s, client: s.opts.EventClient, wakeCh: map[string]chan struct{}{}}
	if d.client == nil {
		d.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	for _, ic := range s.opts.Integrations {
		if ic.Events.URL != "" {
			d.wakeCh[ic.Name] = make(chan struct{}, 1)
		}
	}
	return d
}

func (d *eventDelivery) wake(name string) {
	if ch := d.wakeCh[name]; ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (d *eventDelivery) start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	for i := range d.s.opts.Integrations {
		ic := &d.s.opts.Integrations[i]
		if ic.Events.URL == "" {
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.run(ctx, ic)
		}()
	}
}

func (d *eventDelivery) stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

func (d *eventDelivery) run(ctx context.Context, ic *config.IntegrationConfig) {
	log := d.s.log.With().Str("component", "integration events").Str("integration", ic.Name).Logger()
	q := d.s.db.Integration()
	for ctx.Err() == nil {
		ev, err := q.NextEvent(ctx, ic.Name)
		var wait time.Duration
		switch {
		case err != nil:
			log.Err(err).Msg("Failed to read the event queue")
			wait = ic.Events.RetryInterval
		case ev == nil:
			wait = time.Minute
		case time.Until(ev.NextAttemptAt) > 0:
			wait = time.Until(ev.NextAttemptAt)
		default:
			d.deliver(ctx, ic, ev)
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-d.wakeCh[ic.Name]:
			// A new event cannot overtake a waiting one: the loop reads the oldest again.
		case <-timer.C:
		}
		timer.Stop()
	}
}

func (d *eventDelivery) deliver(ctx context.Context, ic *config.IntegrationConfig, ev *database.APIEvent) {
	log := d.s.log.With().Str("integration", ic.Name).Str("event_id", ev.EventID).Str("event_type", ev.Type).Int("attempt", ev.Attempts+1).Logger()
	q := d.s.db.Integration()
	payload, err := d.s.opts.Keys.Open(ev.KeyID, ev.Payload, eventAdditional(ev.EventID))
	if err != nil {
		// Kept until delivered: an event whose key is gone waits for the key to be configured again.
		log.Err(err).Msg("Failed to open a queued event; it stays queued")
		_ = q.EventFailed(ctx, ev.ID, time.Now().Add(ic.Events.MaxRetryInterval), "its encryption key is not configured")
		return
	}
	err = d.post(ctx, ic, ev, payload)
	if err == nil {
		if err = q.EventDelivered(ctx, ev.ID, time.Now()); err != nil {
			log.Err(err).Msg("Failed to record a delivered event; it may be delivered again")
		} else {
			log.Debug().Msg("Delivered an integration event")
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	backoff := ic.Events.RetryInterval << min(ev.Attempts, 20)
	if backoff > ic.Events.MaxRetryInterval || backoff <= 0 {
		backoff = ic.Events.MaxRetryInterval
	}
	log.Warn().Err(err).Dur("retry_in", backoff).Msg("Event delivery failed; retrying later")
	if err = q.EventFailed(ctx, ev.ID, time.Now().Add(backoff), err.Error()); err != nil {
		log.Err(err).Msg("Failed to record a failed event delivery")
	}
}

func (d *eventDelivery) post(ctx context.Context, ic *config.IntegrationConfig, ev *database.APIEvent, payload []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ic.Events.URL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "carebridge-events/1")
	req.Header.Set("Carebridge-Event-Id", ev.EventID)
	req.Header.Set("Carebridge-Event-Type", ev.Type)
	now := time.Now()
	req.Header.Set(SignatureHeader, Sign(ic.EventSecret(), now, payload))
	if ic.Events.StandardWebhooks {
		// webhook-id is the event's, the same on every attempt, as the specification asks.
		wh, err := standardwebhooks.NewWebhook(ic.EventSecret()) // validated with the config
		if err != nil {
			return fmt.Errorf("the events secret is not a Standard Webhooks secret: %w", err)
		}
		signature, err := wh.Sign(ev.EventID, now, payload)
		if err != nil {
			return fmt.Errorf("failed to sign the event: %w", err)
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, ev.EventID)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		var urlErr interface{ Timeout() bool }
		if errors.As(err, &urlErr) && urlErr.Timeout() {
			return errors.New("the receiver did not answer in time")
		}
		return errors.New("the receiver could not be reached")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return nil
}
