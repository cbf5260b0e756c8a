package testenv

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits of the Messages resource.
const (
	twilioMaxBodyChars = 1600
	twilioMaxMedia     = 10
)

// createMessage validates a send rule by rule: the first failing rule answers with
// Twilio's code for it and nothing is recorded.
func (f *FakeTwilio) createMessage(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount) {
	form, ok := parseTwilioForm(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	f.createCount++
	unavailable := f.failEvery > 0 && f.createCount%f.failEvery == 0
	f.mu.Unlock()
	if unavailable {
		writeTwilioError(w, http.StatusServiceUnavailable, 20503, "Service unavailable")
		return
	}
	to := form.Get("To")
	from := form.Get("From")
	serviceSID := form.Get("MessagingServiceSid")
	body := form.Get("Body")
	mediaURLs := form["MediaUrl"]
	statusCallback := form.Get("StatusCallback")
	reject := func(code int, msg string) {
		writeTwilioError(w, http.StatusBadRequest, code, msg)
	}

	if to == "" {
		reject(twilioErrToRequired, "A 'To' phone number is required.")
		return
	}
	if !twilioE164.MatchString(to) {
		reject(twilioErrInvalidTo, fmt.Sprintf("Invalid 'To' Phone Number: %s", to))
		return
	}
	if from == "" && serviceSID == "" {
		reject(twilioErrFromRequired, "A 'From' phone number is required.")
		return
	}

	f.mu.Lock()
	var senders []string
	if serviceSID != "" {
		svc := f.services[serviceSID]
		if svc == nil || svc.accountSID != acct.sid {
			f.mu.Unlock()
			reject(twilioErrInvalidService, fmt.Sprintf("The Messaging Service Sid %s is invalid.", serviceSID))
			return
		}
		senders = svc.senders
	}
	if from != "" {
		if n := f.numberLocked(from); n == nil || n.accountSID != acct.sid {
			f.mu.Unlock()
			reject(twilioErrFromNotOwned, fmt.Sprintf("The From phone number %s is not a valid, SMS-capable inbound phone number or short code for your account.", from))
			return
		}
		senders = []string{from}
	}
	sender := senders[0]
	optedOut := false
	for _, s := range senders {
		optedOut = optedOut || f.optOuts[fakeTwilioPair{sender: s, recipient: to}]
	}
	f.mu.Unlock()

	switch {
	case to == sender:
		reject(twilioErrSameToFrom, "'To' and 'From' numbers cannot be the same")
		return
	case body == "" && len(mediaURLs) == 0:
		reject(twilioErrBodyRequired, "Message body is required.")
		return
	case utf8.RuneCountInString(body) > twilioMaxBodyChars:
		reject(twilioErrBodyTooLong, "The concatenated message body exceeds the 1600 character limit.")
		return
	case len(mediaURLs) > twilioMaxMedia:
		reject(twilioErrTooManyMedia, "Number of media files exceeds allowed limit. You may send up to 10 media files in a single message.")
		return
	}
	for _, m := range mediaURLs {
		if !isTwilioCallbackURL(m) {
			reject(twilioErrInvalidMediaURL, fmt.Sprintf("Media urls: %s are invalid. Please use only valid http and https urls", m))
			return
		}
	}
	if statusCallback != "" && !isTwilioCallbackURL(statusCallback) {
		reject(twilioErrInvalidCallback, "The StatusCallback URL "+statusCallback+" is not a valid URL.")
		return
	}
	if optedOut {
		reject(twilioErrUnsubscribed, "Attempt to send to unsubscribed recipient")
		return
	}

	prefix := "SM"
	if len(mediaURLs) > 0 {
		prefix = "MM"
	}
	now := time.Now().UTC()
	status := "queued"
	if from == "" {
		status = "accepted"
	}
	m := &fakeTwilioMessage{
		FakeMessage: FakeMessage{
			SID:                 newTwilioSID(prefix),
			AccountSID:          acct.sid,
			MessagingServiceSID: serviceSID,
			From:                sender,
			To:                  to,
			Body:                body,
			MediaURLs:           slices.Clone(mediaURLs),
			StatusCallback:      statusCallback,
			Status:              status,
			NumSegments:         twilioSegments(body),
			ReceivedAt:          now,
		},
		requestedFrom: from,
		created:       now,
		updated:       now,
	}

	f.mu.Lock()
	f.seq++
	m.seq = f.seq
	f.messages = append(f.messages, m)
	res := m.resource()
	outcome, ok := f.outcomes[to]
	if !ok {
		outcome = fakeTwilioOutcome{status: "delivered"}
	}
	token := acct.authToken
	delay := f.callbackDelay
	start := !f.closed
	if start {
		f.wg.Add(1)
	}
	hang := f.answerHangs[to]
	f.broadcastLocked()
	f.mu.Unlock()

	if start {
		go f.deliver(m, token, outcome, delay)
	}
	if hang > 0 {
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
			return
		}
	}
	writeTwilioJSON(w, http.StatusCreated, res)
}

func (f *FakeTwilio) fetchMessage(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount, sid string) {
	f.mu.Lock()
	var res map[string]any
	for _, m := range slices.Concat(f.messages, f.inbound) {
		if m.SID == sid && m.AccountSID == acct.sid {
			res = m.resource()
		}
	}
	f.mu.Unlock()
	if res == nil {
		f.notFound(w, r)
		return
	}
	writeTwilioJSON(w, http.StatusOK, res)
}

// resource is the Message resource JSON; f.mu must be held.
func (m *fakeTwilioMessage) resource() map[string]any {
	uri := twilioAccountsPrefix + m.AccountSID + "/Messages/" + m.SID + ".json"
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	var from any = m.From
	if m.Status == "accepted" {
		// A messaging service has not picked its sender yet.
		from = nil
	}
	var dateSent, errorCode any
	if !m.sent.IsZero() {
		dateSent = twilioDate(m.sent)
	}
	if m.ErrorCode != 0 {
		errorCode = m.ErrorCode
	}
	direction := "outbound-api"
	if m.direction != "" {
		direction = m.direction
	}
	return map[string]any{
		"account_sid":           m.AccountSID,
		"api_version":           twilioAPIVersion,
		"body":                  m.Body,
		"date_created":          twilioDate(m.created),
		"date_sent":             dateSent,
		"date_updated":          twilioDate(m.updated),
		"direction":             direction,
		"error_code":            errorCode,
		"error_message":         nil,
		"from":                  from,
		"messaging_service_sid": nullable(m.MessagingServiceSID),
		"num_media":             strconv.Itoa(len(m.MediaURLs)),
		"num_segments":          strconv.Itoa(m.NumSegments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                m.Status,
		"subresource_uris": map[string]string{
			"media":    strings.TrimSuffix(uri, ".json") + "/Media.json",
			"feedback": strings.TrimSuffix(uri, ".json") + "/Feedback.json",
		},
		"to":  m.To,
		"uri": uri,
	}
}

// GSM 03.38 basic and extension characters; the extension ones take two septets.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "^{}\\[~]|€\f"
)

// twilioSegments counts SMS segments as carriers do: GSM-7 packs 160 septets in one
// segment and 153 per segment when split; anything else goes as UCS-2, 70 UTF-16 units
// in one segment and 67 per segment when split. An empty (media-only) body is one.
func twilioSegments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			septets++
		case strings.ContainsRune(gsm7Extension, r):
			septets += 2
		default:
			gsm = false
		}
	}
	units, single, multi := septets, 160, 153
	if !gsm {
		units, single, multi = len(utf16.Encode([]rune(body))), 70, 67
	}
	if units <= single {
		return 1
	}
	return (units + multi - 1) / multi
}
