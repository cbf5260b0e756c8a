package testenv

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// twilioMaxPageSize is the largest PageSize Twilio's list resources accept.
const twilioMaxPageSize = 1000

// recordInboundLocked puts a patient's text into the account's message log, as Twilio
// does before it calls the webhook, whatever the webhook answers; f.mu must be held.
func (f *FakeTwilio) recordInboundLocked(sid, accountSID, serviceSID, from, to, body string, mediaURLs []string) {
	now := time.Now().UTC()
	f.seq++
	f.inbound = append(f.inbound, &fakeTwilioMessage{
		FakeMessage: FakeMessage{
			SID: sid, AccountSID: accountSID, MessagingServiceSID: serviceSID, From: from, To: to, Body: body,
			MediaURLs: slices.Clone(mediaURLs), Status: "received", NumSegments: twilioSegments(body), ReceivedAt: now,
		},
		direction: "inbound",
		seq:       f.seq,
		created:   now,
		updated:   now,
		sent:      now,
	})
	f.broadcastLocked()
}

// InboundMessages returns a copy of every message patients sent (SendInbound), in order.
func (f *FakeTwilio) InboundMessages() []FakeMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeMessage, len(f.inbound))
	for i, m := range f.inbound {
		out[i] = m.snapshot()
	}
	return out
}

// attachMediaLocked makes the fake's own media among mediaURLs attachments of the
// inbound message: Twilio's media URLs name their message. Other URLs are kept.
func (f *FakeTwilio) attachMediaLocked(messageSID string, mediaURLs []string) []string {
	out := make([]string, len(mediaURLs))
	for i, raw := range mediaURLs {
		out[i] = raw
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if m := f.media[path.Base(u.Path)]; m != nil && strings.HasPrefix(raw, f.server.URL+twilioAccountsPrefix) {
			m.messageSID = messageSID
			out[i] = fmt.Sprintf("%s%s%s/Messages/%s/Media/%s", f.server.URL, twilioAccountsPrefix, m.accountSID, messageSID, m.mediaSID)
		}
	}
	return out
}

// twilioDateFilter reads a DateSent filter: a GMT date (YYYY-MM-DD, the whole day) or,
// as twilio-go sends it, an RFC 3339 time.
func twilioDateFilter(raw string) (from, to time.Time, err error) {
	if day, err := time.Parse(time.DateOnly, raw); err == nil {
		return day, day.Add(24 * time.Hour), nil
	}
	at, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("invalid date %q", raw)
	}
	return at, at.Add(time.Second), nil
}

// listMessages is GET .../Messages.json: the account's message log, newest first (by
// date_sent; messages not sent yet first), filtered by To, From and DateSent (=, < for
// on or before, > for on or after), in pages of PageSize (50 by default) linked by
// next_page_uri, whose PageToken names the last message of the page before.
func (f *FakeTwilio) listMessages(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount) {
	q := r.URL.Query()
	pageSize := 50
	if raw := q.Get("PageSize"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > twilioMaxPageSize {
			writeTwilioError(w, http.StatusBadRequest, twilioErrUnparsable, "PageSize must be between 1 and 1000")
			return
		}
		pageSize = n
	}
	page := 0
	if raw := q.Get("Page"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			writeTwilioError(w, http.StatusBadRequest, twilioErrUnparsable, "Page must be a non-negative integer")
			return
		}
		page = n
	}
	type bound struct {
		key   string
		check func(sent, from, to time.Time) bool
	}
	var filters []func(m *fakeTwilioMessage) bool
	for _, b := range []bound{
		{"DateSent", func(sent, from, to time.Time) bool { return !sent.Before(from) && sent.Before(to) }},
		{"DateSent<", func(sent, _, to time.Time) bool { return sent.Before(to) }},
		{"DateSent>", func(sent, from, _ time.Time) bool { return !sent.Before(from) }},
	} {
		raw := q.Get(b.key)
		if raw == "" {
			continue
		}
		from, to, err := twilioDateFilter(raw)
		if err != nil {
			writeTwilioError(w, http.StatusBadRequest, twilioErrUnparsable, b.key+": "+err.Error())
			return
		}
		check := b.check
		filters = append(filters, func(m *fakeTwilioMessage) bool { return !m.sent.IsZero() && check(m.sent, from, to) })
	}
	if to := q.Get("To"); to != "" {
		filters = append(filters, func(m *fakeTwilioMessage) bool { return m.To == to })
	}
	if from := q.Get("From"); from != "" {
		filters = append(filters, func(m *fakeTwilioMessage) bool { return m.From == from })
	}

	f.mu.Lock()
	var all []*fakeTwilioMessage
	for _, m := range slices.Concat(f.messages, f.inbound) {
		if m.AccountSID != acct.sid {
			continue
		}
		keep := true
		for _, match := range filters {
			keep = keep && match(m)
		}
		if keep {
			all = append(all, m)
		}
	}
	slices.SortFunc(all, func(a, b *fakeTwilioMessage) int {
		switch {
		case a.sent.IsZero() != b.sent.IsZero():
			if a.sent.IsZero() {
				return -1
			}
			return 1
		case !a.sent.Equal(b.sent):
			return b.sent.Compare(a.sent)
		}
		return cmp.Compare(b.seq, a.seq)
	})
	start := page * pageSize
	if token := q.Get("PageToken"); token != "" {
		after := strings.TrimPrefix(token, "PA")
		i := slices.IndexFunc(all, func(m *fakeTwilioMessage) bool { return m.SID == after })
		if !strings.HasPrefix(token, "PA") || i < 0 {
			f.mu.Unlock()
			writeTwilioError(w, http.StatusBadRequest, twilioErrUnparsable, "Invalid PageToken")
			return
		}
		start = i + 1
	}
	items := []map[string]any{}
	var last string
	for _, m := range all[min(start, len(all)):min(start+pageSize, len(all))] {
		items = append(items, m.resource())
		last = m.SID
	}
	more := start+len(items) < len(all)
	f.mu.Unlock()

	pageURI := func(p int, token string) string {
		v := url.Values{}
		for _, key := range []string{"To", "From", "DateSent", "DateSent<", "DateSent>"} {
			if raw := q.Get(key); raw != "" {
				v.Set(key, raw)
			}
		}
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		if token != "" {
			v.Set("PageToken", token)
		}
		return twilioAccountsPrefix + acct.sid + "/Messages.json?" + v.Encode()
	}
	var next, prev any
	if more {
		next = pageURI(page+1, "PA"+last)
	}
	if page > 0 {
		prev = pageURI(page-1, "")
	}
	writeTwilioJSON(w, http.StatusOK, map[string]any{
		"end":               start + max(len(items)-1, 0),
		"first_page_uri":    pageURI(0, ""),
		"messages":          items,
		"next_page_uri":     next,
		"page":              page,
		"page_size":         pageSize,
		"previous_page_uri": prev,
		"start":             start,
		"uri":               pageURI(page, q.Get("PageToken")),
	})
}

// listMessageMedia is GET .../Messages/{MessageSid}/Media.json: an inbound MMS's media.
func (f *FakeTwilio) listMessageMedia(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount, messageSID string) {
	f.mu.Lock()
	var msg *fakeTwilioMessage
	for _, m := range slices.Concat(f.messages, f.inbound) {
		if m.SID == messageSID && m.AccountSID == acct.sid {
			msg = m
		}
	}
	var items []map[string]any
	if msg != nil {
		items = []map[string]any{}
		for _, raw := range msg.MediaURLs {
			u, err := url.Parse(raw)
			if err != nil {
				continue
			}
			m := f.media[path.Base(u.Path)]
			if m == nil || m.messageSID != messageSID {
				continue
			}
			items = append(items, map[string]any{
				"account_sid":  m.accountSID,
				"content_type": m.contentType,
				"date_created": twilioDate(m.created),
				"date_updated": twilioDate(m.created),
				"parent_sid":   messageSID,
				"sid":          m.mediaSID,
				"uri":          twilioAccountsPrefix + m.accountSID + "/Messages/" + messageSID + "/Media/" + m.mediaSID + ".json",
			})
		}
	}
	f.mu.Unlock()
	if msg == nil {
		f.notFound(w, r)
		return
	}
	// An MMS has at most 10 media: one page of any size Twilio allows holds them.
	pageSize := 50
	if n, err := strconv.Atoi(r.URL.Query().Get("PageSize")); err == nil && n >= 1 && n <= twilioMaxPageSize {
		pageSize = n
	}
	items = items[:min(len(items), pageSize)]
	uri := fmt.Sprintf("%s%s/Messages/%s/Media.json?PageSize=%d&Page=0", twilioAccountsPrefix, acct.sid, messageSID, pageSize)
	writeTwilioJSON(w, http.StatusOK, map[string]any{
		"end": max(len(items)-1, 0), "first_page_uri": uri, "media_list": items, "next_page_uri": nil,
		"page": 0, "page_size": pageSize, "previous_page_uri": nil, "start": 0, "uri": uri,
	})
}
