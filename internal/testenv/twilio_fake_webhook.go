package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// InboundResult is what the bridge answered to an inbound-message webhook.
type InboundResult struct {
	// MessageSID is the inbound message's SID ("SM…", or "MM…" with media).
	MessageSID string
	// URL and Method are the number's SmsUrl and SmsMethod at the time of sending.
	URL    string
	Method string
	// IdempotencyToken is the I-Twilio-Idempotency-Token header, the same on resends.
	IdempotencyToken string
	StatusCode       int
	Header           http.Header
	Body             string
	// Params is the exact form Twilio sent (and signed).
	Params url.Values
	// Attempts is how often SmsUrl was called: once, unless its connection overrides
	// (the URL's #fragment) ask for retries.
	Attempts int
	// FallbackURL is the SmsFallbackUrl called after SmsUrl failed ("" when it was not),
	// FallbackAttempts how often. StatusCode, Header and Body are then its answer.
	FallbackURL      string
	FallbackAttempts int
}

// Twilio's default opt-out handling: these bodies (trimmed, any case) opt the sender
// out of, or back into, messages from the number they texted.
var (
	twilioOptOutKeywords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
	twilioOptInKeywords  = []string{"START", "YES", "UNSTOP"}
	twilioHelpKeywords   = []string{"HELP", "INFO"}
)

// PostSigned posts params form-encoded to rawURL the way Twilio calls a webhook: signed
// with authToken in X-Twilio-Signature, with Twilio's User-Agent and a fresh
// I-Twilio-Idempotency-Token, not following redirects. The caller closes the body.
// A #fragment of rawURL (connection overrides) is signed but not sent, as by Twilio; this
// one call is not retried.
func (f *FakeTwilio) PostSigned(ctx context.Context, rawURL string, params url.Values, authToken string) (*http.Response, error) {
	return f.callWebhook(ctx, http.MethodPost, rawURL, params, authToken, newTwilioSID(""))
}

func (f *FakeTwilio) callWebhook(ctx context.Context, method, rawURL string, params url.Values, authToken, idempotencyToken string) (*http.Response, error) {
	return f.callWebhookWith(ctx, f.client, method, rawURL, params, authToken, idempotencyToken)
}

// callWebhookWith makes one webhook request: GET with the parameters in the query, or a
// form POST; signed over the URL as configured, fragment included, which the request
// line never carries.
func (f *FakeTwilio) callWebhookWith(ctx context.Context, client *http.Client, method, rawURL string, params url.Values, authToken, idempotencyToken string) (*http.Response, error) {
	_, requestURL := signedURL(method, rawURL, params)
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, requestURL, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, requestURL, strings.NewReader(params.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to build webhook request: %w", err)
	}
	req.Header.Set("X-Twilio-Signature", signWebhook(authToken, method, rawURL, params))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", idempotencyToken)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to call webhook %s: %w", requestURL, err)
	}
	return resp, nil
}

// SendInbound delivers an SMS (or MMS, with mediaURLs such as those from AddMedia) from
// `from` to the fake's number `to`, as Twilio does: it records the message in the
// account's message log ("received"), builds Twilio's inbound form, signs it with the
// owning account's auth token and calls the number's SmsUrl with its SmsMethod. Like
// Twilio, it calls once and does not retry a failure unless the SmsUrl's fragment holds
// connection overrides (#rc=…&rp=…), then calls the SmsFallbackUrl if one is set. The
// fake's own media are attached to the message (their URLs name it, as Twilio's do). A
// body that is an opt-out (STOP…) or opt-in (START…) keyword changes the opt-out state
// first, and the form carries OptOutType, as with Twilio's default handling. A non-2xx
// answer is no error: it is in the result's StatusCode; no answer at all is an error.
func (f *FakeTwilio) SendInbound(ctx context.Context, from, to, body string, mediaURLs ...string) (InboundResult, error) {
	if from == "" {
		return InboundResult{}, errors.New("inbound message needs a sender")
	}
	f.mu.Lock()
	num := f.numberLocked(to)
	if num == nil {
		f.mu.Unlock()
		return InboundResult{}, fmt.Errorf("%s is not a number of the fake, add it with AddNumber", to)
	}
	if num.smsURL == "" {
		f.mu.Unlock()
		return InboundResult{}, fmt.Errorf("number %s (%s) has no SmsUrl: configure it through the REST API first", to, num.sid)
	}
	res := InboundResult{URL: num.smsURL, Method: num.smsMethod, IdempotencyToken: newTwilioSID("")}
	fallbackURL, fallbackMethod := num.smsFallbackURL, num.smsFallbackMethod
	var serviceSID string
	for _, svc := range f.services {
		if slices.Contains(svc.senders, to) {
			serviceSID = svc.sid
		}
	}
	prefix := "SM"
	if len(mediaURLs) > 0 {
		prefix = "MM"
	}
	res.MessageSID = newTwilioSID(prefix)
	mediaURLs = f.attachMediaLocked(res.MessageSID, mediaURLs)
	contentTypes := make([]string, len(mediaURLs))
	for i, u := range mediaURLs {
		contentTypes[i] = f.mediaContentTypeLocked(u)
	}
	keyword := strings.ToUpper(strings.TrimSpace(body))
	optOutType := ""
	switch {
	case slices.Contains(twilioOptOutKeywords, keyword):
		optOutType = "STOP"
		f.optOuts[fakeTwilioPair{sender: to, recipient: from}] = true
	case slices.Contains(twilioOptInKeywords, keyword):
		optOutType = "START"
		delete(f.optOuts, fakeTwilioPair{sender: to, recipient: from})
	case slices.Contains(twilioHelpKeywords, keyword):
		optOutType = "HELP"
	}
	accountSID := num.accountSID
	token := f.accounts[accountSID].authToken
	f.recordInboundLocked(res.MessageSID, accountSID, serviceSID, from, to, body, mediaURLs)
	f.mu.Unlock()

	toGeo, fromGeo := twilioGeo(to), twilioGeo(from)
	params := url.Values{
		"ToCountry":     {toGeo.country},
		"ToState":       {toGeo.state},
		"SmsMessageSid": {res.MessageSID},
		"NumMedia":      {strconv.Itoa(len(mediaURLs))},
		"ToCity":        {toGeo.city},
		"FromZip":       {fromGeo.zip},
		"SmsSid":        {res.MessageSID},
		"FromState":     {fromGeo.state},
		"SmsStatus":     {"received"},
		"FromCity":      {fromGeo.city},
		"Body":          {body},
		"FromCountry":   {fromGeo.country},
		"To":            {to},
		"ToZip":         {toGeo.zip},
		"NumSegments":   {strconv.Itoa(twilioSegments(body))},
		"MessageSid":    {res.MessageSID},
		"AccountSid":    {accountSID},
		"From":          {from},
		"ApiVersion":    {twilioAPIVersion},
	}
	for i, u := range mediaURLs {
		params.Set("MediaUrl"+strconv.Itoa(i), u)
		params.Set("MediaContentType"+strconv.Itoa(i), contentTypes[i])
	}
	if serviceSID != "" {
		params.Set("MessagingServiceSid", serviceSID)
	}
	if optOutType != "" {
		params.Set("OptOutType", optOutType)
	}
	res.Params = params
	return f.callNumberWebhook(ctx, res, fallbackURL, fallbackMethod, token)
}

// ResendInbound posts res.Params once more to the same URL with the same MessageSid and
// idempotency token, as an operator replaying a failed webhook from Twilio's console
// does. The returned result holds the new answer.
func (f *FakeTwilio) ResendInbound(ctx context.Context, res InboundResult) (InboundResult, error) {
	f.mu.Lock()
	acct := f.accounts[res.Params.Get("AccountSid")]
	var token string
	if acct != nil {
		token = acct.authToken
	}
	f.mu.Unlock()
	if acct == nil {
		return res, fmt.Errorf("inbound message names unknown account %q", res.Params.Get("AccountSid"))
	}
	out := res
	out.Params = cloneValues(res.Params)
	resp, err := f.callWebhook(ctx, res.Method, res.URL, out.Params, token, res.IdempotencyToken)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.StatusCode = resp.StatusCode
	out.Header = resp.Header
	out.Body = string(data)
	if err != nil {
		return out, fmt.Errorf("failed to read webhook answer: %w", err)
	}
	return out, nil
}

// mediaContentTypeLocked is the type of a media URL: known for the fake's own media,
// else guessed from the file extension.
func (f *FakeTwilio) mediaContentTypeLocked(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		if m := f.media[path.Base(u.Path)]; m != nil {
			return m.contentType
		}
		if t := mime.TypeByExtension(path.Ext(u.Path)); t != "" {
			return t
		}
	}
	return "application/octet-stream"
}

type twilioGeoInfo struct{ country, state, city, zip string }

// twilioGeo fills the geographic webhook fields. Twilio knows the country from the
// calling code; city, state and zip come from number data it does not have for
// fictional 555 numbers, and are sent empty, which still counts for the signature.
func twilioGeo(e164 string) twilioGeoInfo {
	for _, c := range []struct{ prefix, country string }{
		{"+1", "US"}, {"+44", "GB"}, {"+49", "DE"}, {"+33", "FR"}, {"+34", "ES"},
		{"+39", "IT"}, {"+31", "NL"}, {"+61", "AU"}, {"+353", "IE"}, {"+64", "NZ"},
	} {
		if strings.HasPrefix(e164, c.prefix) {
			return twilioGeoInfo{country: c.country}
		}
	}
	return twilioGeoInfo{}
}
