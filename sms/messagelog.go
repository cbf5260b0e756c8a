package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// LoggedMessage is one message of the account's message log, as Twilio's Messages
// resource describes it. It holds the body: never log it.
type LoggedMessage struct {
	SID                 string
	AccountSID          string
	MessagingServiceSID string
	From                string
	To                  string
	Body                string
	// Direction is "inbound" for a patient's text; outbound ones are "outbound-api",
	// "outbound-call" or "outbound-reply".
	Direction string
	// Status is the message's latest status (received, queued, sent, delivered, …).
	Status string
	// ErrorCode is Twilio's error code of a failed or undelivered message, else 0.
	ErrorCode   int
	NumSegments int
	// DateCreated is when Twilio accepted the message (an outbound one) or received it.
	DateCreated time.Time
	// DateSent is when Twilio called the webhook of an inbound message, or sent an
	// outbound one; zero when it has not (yet).
	DateSent time.Time
	// NumMedia is how many attachments the message has; Media are an inbound MMS's
	// attachments, in order (ListInbound fills them).
	NumMedia int
	Media    []Media
}

// Received reports whether the message is a patient's text Twilio finished receiving
// (an MMS is "receiving" while its media are fetched).
func (m *LoggedMessage) Received() bool {
	return m.Direction == "inbound" && m.Status == "received"
}

// WebhookForm is the form of the inbound webhook Twilio sends for the message, with the
// fields ParseInbound reads and those Twilio sends beside them; the geographic ones
// (FromCity, ToZip, …) are not in the message log and are left out.
func (m *LoggedMessage) WebhookForm() url.Values {
	form := url.Values{
		"MessageSid":    {m.SID},
		"SmsMessageSid": {m.SID},
		"SmsSid":        {m.SID},
		"AccountSid":    {m.AccountSID},
		"From":          {m.From},
		"To":            {m.To},
		"Body":          {m.Body},
		"NumMedia":      {strconv.Itoa(len(m.Media))},
		"NumSegments":   {strconv.Itoa(max(m.NumSegments, 1))},
		"SmsStatus":     {m.Status},
		"ApiVersion":    {"2010-04-01"},
	}
	if m.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	for i, media := range m.Media {
		form.Set("MediaUrl"+strconv.Itoa(i), media.URL)
		form.Set("MediaContentType"+strconv.Itoa(i), media.ContentType)
	}
	return form
}

// DefaultListPageSize is how many messages one page of the message log holds: Twilio's
// default is 50 and its maximum 1,000; a catch-up after a short gap reads one page.
const DefaultListPageSize = 200

// defaultAPIBase is Twilio's REST API, the base of the media URLs in its webhooks.
const defaultAPIBase = "https://api.twilio.com"

// ListInbound reads the message log newest first, page after page (next_page_uri), and
// returns the inbound messages to `to` sent at or after since, oldest first, each MMS
// with its media. Twilio's DateSent> filter may count whole days; since is applied
// again here to the second.
func (t *Twilio) ListInbound(ctx context.Context, to string, since time.Time) ([]*LoggedMessage, error) {
	params := (&openapi.ListMessageParams{}).SetTo(to).SetDateSentAfter(since.UTC().Truncate(time.Second)).
		SetPageSize(t.listPageSize)
	records, err := t.api.ListMessage(params)
	if err != nil {
		return nil, fmt.Errorf("failed to list the number's messages: %w", wrapTwilioError(err))
	}
	var out []*LoggedMessage
	for i := range records {
		m, err := loggedMessage(&records[i])
		if err != nil {
			return nil, err
		}
		if m.To != to || m.Direction != "inbound" || m.DateSent.Before(since.Truncate(time.Second)) {
			continue
		}
		out = append(out, m)
	}
	// Newest first from Twilio; the bridge stores them in the order they were sent.
	slices.Reverse(out)
	for _, m := range out {
		if err = ctx.Err(); err != nil {
			return nil, err
		}
		if !m.Received() || m.NumMedia == 0 {
			continue
		}
		if m.Media, err = t.listMedia(m.SID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// listMedia returns a message's media as its webhook gives them: the media resource's
// URL without ".json" (which redirects to the bytes), and its content type.
func (t *Twilio) listMedia(messageSID string) ([]Media, error) {
	list, err := t.api.ListMedia(messageSID, (&openapi.ListMediaParams{}).SetPageSize(MaxMedia))
	if err != nil {
		return nil, fmt.Errorf("failed to list the media of %s: %w", messageSID, wrapTwilioError(err))
	}
	media := make([]Media, 0, len(list))
	for _, item := range list {
		if item.Uri == nil || item.ContentType == nil {
			return nil, fmt.Errorf("%w: media of %s without uri or content_type", ErrTwilioRejection, messageSID)
		}
		media = append(media, Media{URL: t.apiBase + strings.TrimSuffix(*item.Uri, ".json"), ContentType: *item.ContentType})
	}
	return media, nil
}

// SentLookback is how many of the newest messages between a clinic number and a patient
// ListSent reads: a conversation's texts leave one at a time, so the one a stopped process
// was sending is among the newest few (one-time codes, sent at once, may follow it).
const SentLookback = 50

// ListSent reads the newest SentLookback messages from `from` to `to` (one page; Twilio
// lists them newest first, those not sent yet first of all) and returns the outbound ones
// created at or after since, oldest first. Their media are not listed (NumMedia counts them).
func (t *Twilio) ListSent(ctx context.Context, from, to string, since time.Time) ([]*LoggedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	params := (&openapi.ListMessageParams{}).SetFrom(from).SetTo(to).SetPageSize(SentLookback).SetLimit(SentLookback)
	records, err := t.api.ListMessage(params)
	if err != nil {
		return nil, fmt.Errorf("failed to list the texts sent to a patient: %w", wrapTwilioError(err))
	}
	var out []*LoggedMessage
	for i := range records {
		m, err := loggedMessage(&records[i])
		if err != nil {
			return nil, err
		}
		if m.From == from && m.To == to && strings.HasPrefix(m.Direction, "outbound") && !m.DateCreated.Before(since.Truncate(time.Second)) {
			out = append(out, m)
		}
	}
	// Newest first, by date_sent; oldest first by creation (to the second) for the bridge.
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b *LoggedMessage) int { return a.DateCreated.Compare(b.DateCreated) })
	return out, nil
}

// FetchMessage reads one message of the account.
func (t *Twilio) FetchMessage(ctx context.Context, sid string) (*LoggedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	record, err := t.api.FetchMessage(sid, nil)
	if err != nil {
		var restErr *client.TwilioRestError
		if errors.As(err, &restErr) && restErr.Status == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s", ErrMessageNotFound, sid)
		}
		return nil, fmt.Errorf("failed to fetch message %s: %w", sid, wrapTwilioError(err))
	}
	return loggedMessage(record)
}

// loggedMessage reads a Messages resource. Its dates are RFC 2822, in GMT.
func loggedMessage(r *openapi.ApiV2010Message) (*LoggedMessage, error) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	m := &LoggedMessage{
		SID:                 str(r.Sid),
		AccountSID:          str(r.AccountSid),
		MessagingServiceSID: str(r.MessagingServiceSid),
		From:                str(r.From),
		To:                  str(r.To),
		Body:                str(r.Body),
		Direction:           str(r.Direction),
		Status:              str(r.Status),
	}
	if !messageSIDPattern.MatchString(m.SID) {
		return nil, fmt.Errorf("%w: a listed message has no valid sid", ErrTwilioRejection)
	}
	if r.ErrorCode != nil {
		m.ErrorCode = *r.ErrorCode
	}
	if r.NumMedia != nil {
		m.NumMedia, _ = strconv.Atoi(*r.NumMedia)
	}
	if r.NumSegments != nil {
		m.NumSegments, _ = strconv.Atoi(*r.NumSegments)
	}
	if raw := str(r.DateCreated); raw != "" {
		created, err := ParseTwilioDate(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: message %s has date_created %q: %w", ErrTwilioRejection, m.SID, raw, err)
		}
		m.DateCreated = created
	}
	if raw := str(r.DateSent); raw != "" {
		sent, err := ParseTwilioDate(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: message %s has date_sent %q: %w", ErrTwilioRejection, m.SID, raw, err)
		}
		m.DateSent = sent
	}
	return m, nil
}

// ParseTwilioDate reads a date of Twilio's REST API, RFC 2822 in GMT such as
// "Wed, 18 Aug 2010 20:01:40 +0000".
func ParseTwilioDate(raw string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, raw); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not an RFC 2822 date")
}
