package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// EmptyTwiML answers an inbound webhook without sending a reply.
const EmptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// MaxMedia is the most media Twilio attaches to one MMS.
const MaxMedia = 10

var (
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
)

// Media is one attachment of an inbound MMS.
type Media struct {
	URL         string
	ContentType string
}

// Inbound is a patient's text as Twilio's webhook describes it.
type Inbound struct {
	MessageSID string
	AccountSID string
	From       string
	To         string
	Body       string
	Media      []Media
	// OptOutType is set when Twilio's Advanced Opt-Out already handled a keyword.
	OptOutType string
}

// ParseInbound reads an inbound message webhook's form. It rejects what Twilio never sends.
func ParseInbound(form url.Values) (*Inbound, error) {
	in := &Inbound{
		MessageSID: form.Get("MessageSid"),
		AccountSID: form.Get("AccountSid"),
		From:       form.Get("From"),
		To:         form.Get("To"),
		Body:       form.Get("Body"),
		OptOutType: form.Get("OptOutType"),
	}
	switch {
	case !messageSIDPattern.MatchString(in.MessageSID):
		return nil, fmt.Errorf("%w: MessageSid missing or malformed", ErrInvalidWebhook)
	case !accountSIDPattern.MatchString(in.AccountSID):
		return nil, fmt.Errorf("%w: AccountSid missing or malformed", ErrInvalidWebhook)
	case in.From == "" || in.To == "":
		return nil, fmt.Errorf("%w: From or To missing", ErrInvalidWebhook)
	}
	numMedia := 0
	if raw := form.Get("NumMedia"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 || n > MaxMedia {
			return nil, fmt.Errorf("%w: NumMedia %q out of range", ErrInvalidWebhook, truncate(raw, 8))
		}
		numMedia = n
	}
	for i := range numMedia {
		idx := strconv.Itoa(i)
		media := Media{URL: form.Get("MediaUrl" + idx), ContentType: form.Get("MediaContentType" + idx)}
		if u, err := url.Parse(media.URL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("%w: MediaUrl%d missing or not a URL", ErrInvalidWebhook, i)
		}
		in.Media = append(in.Media, media)
	}
	if in.Body == "" && len(in.Media) == 0 {
		return nil, fmt.Errorf("%w: neither Body nor media", ErrInvalidWebhook)
	}
	return in, nil
}

// PublicRequestURL is the URL Twilio called and signed: the public base (where Twilio
// reaches the bridge) plus the path and query the bridge saw.
func PublicRequestURL(publicBase string, r *http.Request) string {
	return strings.TrimRight(publicBase, "/") + r.URL.RequestURI()
}

// ConnectionOverrides are Twilio's webhook connection overrides that the bridge puts, as
// the URL's fragment, on every webhook URL it gives Twilio: without them Twilio does not
// retry a failed SMS webhook at all (error 11200). With them it retries up to 5 times
// when the bridge cannot be reached within 3 s (ct), does not answer within 5 s (rt), or
// answers 5xx; all attempts share Twilio's 15 s. A 4xx (bad signature, malformed form)
// is not retried: it would fail again.
const ConnectionOverrides = "ct=3000&rt=5000&rc=5&rp=ct,rt,5xx"

// WithConnectionOverrides is the webhook URL to give Twilio: rawURL with
// ConnectionOverrides as its fragment.
func WithConnectionOverrides(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	base, _, _ := strings.Cut(rawURL, "#")
	return base + "#" + ConnectionOverrides
}

// ValidWebhookSignature checks a webhook that arrived at publicURL (PublicRequestURL).
// Twilio signs the webhook URL exactly as it was configured, fragment included (its
// docs: the signature covers "the Webhook URL set in Twilio"), although an HTTP client
// never sends the fragment: the bridge signs what it configured, publicURL with
// ConnectionOverrides, and also accepts publicURL alone, the URL of a number set up by
// an earlier version or the status callback of a text sent before.
func ValidWebhookSignature(authToken, publicURL string, form url.Values, signature string) bool {
	return ValidSignature(authToken, WithConnectionOverrides(publicURL), form, signature) ||
		ValidSignature(authToken, publicURL, form, signature)
}

// ValidSignature checks X-Twilio-Signature with twilio-go's validator. Twilio signs the
// first value of each parameter; webhooks carry no repeated names.
func ValidSignature(authToken, publicURL string, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	params := make(map[string]string, len(form))
	for key, values := range form {
		if len(values) != 1 {
			return false
		}
		params[key] = values[0]
	}
	validator := client.NewRequestValidator(authToken)
	return validator.Validate(publicURL, params, signature)
}

// SignWebhook computes the X-Twilio-Signature Twilio sends with a webhook, for whatever
// stands in for Twilio in demos and tests: HMAC-SHA1 keyed with the auth token over the
// full URL followed by every POST parameter's name and value, sorted by name (a repeated
// name contributes each of its values, in sorted order), encoded as standard base64. For a GET webhook the parameters are in the URL and params is empty.
func SignWebhook(authToken, rawURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	_, _ = io.WriteString(mac, rawURL)
	for _, key := range slices.Sorted(maps.Keys(params)) {
		values := slices.Clone(params[key])
		slices.Sort(values)
		for _, v := range values {
			_, _ = io.WriteString(mac, key)
			_, _ = io.WriteString(mac, v)
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
