package twiliosim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/carebridge/carebridge/sms"
)

// ListInbound is called when the bridge catches up on texts its webhook missed: the
// texts typed on the phone page to the clinic number `to` at or after since, oldest
// first, as Twilio's message log lists them (whole seconds). The page keeps a text only
// once the bridge stored it, so a catch-up finds nothing new; it is here so that the
// bridge runs the same way on the simulator.
func (a *Account) ListInbound(ctx context.Context, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := a.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*sms.LoggedMessage
	for _, th := range s.threads {
		for _, t := range th.sent {
			sent := t.Time.UTC().Truncate(time.Second)
			if t.To != to || sent.Before(since.Truncate(time.Second)) {
				continue
			}
			m := &sms.LoggedMessage{SID: t.SID, AccountSID: a.accountSID, From: t.From, To: t.To, Body: t.Body,
				Direction: "inbound", Status: "received", DateSent: sent, NumMedia: len(t.MediaURLs)}
			segments, _ := sms.CountSegments(t.Body)
			m.NumSegments = max(segments, 1)
			for i, u := range t.MediaURLs {
				media := sms.Media{URL: u}
				if i < len(t.mediaTypes) {
					media.ContentType = t.mediaTypes[i]
				}
				m.Media = append(m.Media, media)
			}
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(x, y *sms.LoggedMessage) int { return x.DateSent.Compare(y.DateSent) })
	return out, nil
}

// ListSent is called for a text a stopped bridge was sending when it stopped: the texts
// the phone page `to` received from `from` at or after since, oldest first.
func (a *Account) ListSent(ctx context.Context, from, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := a.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*sms.LoggedMessage
	for _, th := range s.threads {
		for _, t := range th.received {
			if t.From != from || t.To != to || t.Time.Before(since.Truncate(time.Second)) {
				continue
			}
			out = append(out, a.loggedSent(t))
		}
	}
	slices.SortStableFunc(out, func(x, y *sms.LoggedMessage) int { return x.DateCreated.Compare(y.DateCreated) })
	return out, nil
}

// FetchMessage is called for a text the bridge sent whose final status never reached it:
// the text's status on the patient's phone.
func (a *Account) FetchMessage(ctx context.Context, sid string) (*sms.LoggedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := a.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, th := range s.threads {
		for _, t := range th.received {
			if t.SID == sid {
				return a.loggedSent(t), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s", sms.ErrMessageNotFound, truncate(sid, 40))
}

// loggedSent is a text from the bridge as Twilio's message log describes it; s.mu is held.
func (a *Account) loggedSent(t Text) *sms.LoggedMessage {
	at := t.Time.UTC().Truncate(time.Second)
	m := &sms.LoggedMessage{SID: t.SID, AccountSID: a.accountSID, From: t.From, To: t.To, Body: t.Body,
		Direction: "outbound-api", Status: t.Status, ErrorCode: t.ErrorCode, NumMedia: len(t.MediaURLs), DateCreated: at}
	if t.Status != "queued" {
		m.DateSent = at
	}
	return m
}
