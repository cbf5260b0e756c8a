package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// TwilioOptions says how to reach Twilio's REST API.
type TwilioOptions struct {
	AccountSID string
	AuthToken  string
	// APIURL replaces https://api.twilio.com (tests, Twilio-compatible servers); empty for the real API.
	APIURL  string
	Timeout time.Duration
	// ListPageSize is how many messages a page of the message log holds; 0 means
	// DefaultListPageSize (Twilio allows 1 to 1,000).
	ListPageSize int
}

// defaultTimeout bounds a Twilio request when no timeout is configured: twilio-go's
// calls take no context, so without one a send could hang forever.
const defaultTimeout = 30 * time.Second

// Twilio is the Provider backed by Twilio's REST API through twilio-go.
type Twilio struct {
	accountSID string
	api        *openapi.ApiService
	// apiBase is where the API is, the base of inbound media URLs (as in webhooks).
	apiBase      string
	listPageSize int
}

var _ Provider = (*Twilio)(nil)

// NewTwilio builds a client for one Twilio account.
func NewTwilio(opts TwilioOptions) (*Twilio, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	httpClient := &http.Client{
		Timeout: opts.Timeout,
		// twilio-go's own client does not follow redirects either: an API redirect is a fault.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if opts.APIURL != "" {
		base, err := url.Parse(opts.APIURL)
		if err != nil || base.Host == "" {
			return nil, fmt.Errorf("invalid Twilio API URL %q", opts.APIURL)
		}
		httpClient.Transport = &rewriteTransport{base: base, next: http.DefaultTransport}
	}
	c := &client.Client{Credentials: client.NewCredentials(opts.AccountSID, opts.AuthToken), HTTPClient: httpClient}
	c.SetAccountSid(opts.AccountSID)
	pageSize := opts.ListPageSize
	if pageSize <= 0 || pageSize > 1000 {
		pageSize = DefaultListPageSize
	}
	apiBase := defaultAPIBase
	if opts.APIURL != "" {
		apiBase = strings.TrimRight(opts.APIURL, "/")
	}
	return &Twilio{accountSID: opts.AccountSID, api: openapi.NewApiServiceWithClient(c), apiBase: apiBase, listPageSize: pageSize}, nil
}

// rewriteTransport sends requests meant for Twilio's API hosts to another base URL.
// twilio-go has no base-URL option; its hosts are fixed.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func (rt *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Host, ".twilio.com") {
		req = req.Clone(req.Context())
		req.URL.Scheme = rt.base.Scheme
		req.URL.Host = rt.base.Host
		req.URL.Path = strings.TrimRight(rt.base.Path, "/") + req.URL.Path
		req.Host = rt.base.Host
	}
	return rt.next.RoundTrip(req)
}

// CheckAccount fetches the account, which fails on wrong credentials.
func (t *Twilio) CheckAccount(ctx context.Context) error {
	_, err := t.api.FetchAccount(t.accountSID)
	if err != nil {
		var sendErr *SendError
		// 20003: refused by Twilio; 21222/21224: twilio-go refuses characters no SID or
		// token contains before sending anything.
		if errors.As(wrapTwilioError(err), &sendErr) &&
			(sendErr.Code == 20003 || sendErr.Code == 21222 || sendErr.Code == 21224 || sendErr.Status == http.StatusUnauthorized) {
			return ErrBadCredentials
		}
		return fmt.Errorf("failed to fetch Twilio account: %w", err)
	}
	return nil
}

// LookupNumber finds the account's number by its E.164 form.
func (t *Twilio) LookupNumber(ctx context.Context, e164 string) (*PhoneNumber, error) {
	params := (&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber(e164).SetPageSize(20).SetLimit(20)
	numbers, err := t.api.ListIncomingPhoneNumber(params)
	if err != nil {
		return nil, fmt.Errorf("failed to list the account's phone numbers: %w", wrapTwilioError(err))
	}
	for _, n := range numbers {
		if n.PhoneNumber != nil && *n.PhoneNumber == e164 && n.Sid != nil {
			pn := &PhoneNumber{SID: *n.Sid, E164: e164}
			if n.FriendlyName != nil {
				pn.FriendlyName = *n.FriendlyName
			}
			if n.SmsUrl != nil {
				pn.SMSURL = *n.SmsUrl
			}
			if n.SmsFallbackUrl != nil {
				pn.SMSFallbackURL = *n.SmsFallbackUrl
			}
			return pn, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNumberNotOwned, e164)
}

// ConfigureWebhooks sets the number's inbound SMS webhook and its fallback (cleared when
// hooks has none).
func (t *Twilio) ConfigureWebhooks(ctx context.Context, numberSID string, hooks NumberWebhooks) error {
	params := (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl(hooks.SMSURL).SetSmsMethod(http.MethodPost).
		SetSmsFallbackUrl(hooks.SMSFallbackURL).SetSmsFallbackMethod(http.MethodPost)
	if _, err := t.api.UpdateIncomingPhoneNumber(numberSID, params); err != nil {
		return fmt.Errorf("failed to set the number's SMS webhook: %w", wrapTwilioError(err))
	}
	return nil
}

// Send creates the message at Twilio. twilio-go's CreateMessage takes no context: the
// HTTP client's timeout bounds it.
func (t *Twilio) Send(ctx context.Context, msg *OutboundMessage) (*SentMessage, error) {
	params := (&openapi.CreateMessageParams{}).SetFrom(msg.From).SetTo(msg.To)
	if msg.Body != "" {
		params.SetBody(msg.Body)
	}
	if len(msg.MediaURLs) > 0 {
		params.SetMediaUrl(msg.MediaURLs)
	}
	if msg.StatusCallback != "" {
		params.SetStatusCallback(msg.StatusCallback)
	}
	resp, err := t.api.CreateMessage(params)
	if err != nil {
		return nil, wrapTwilioError(err)
	}
	sent := &SentMessage{}
	if resp.Sid != nil {
		sent.SID = *resp.Sid
	}
	if resp.Status != nil {
		sent.Status = *resp.Status
	}
	if sent.SID == "" {
		return nil, &SendError{Err: errors.New("Twilio accepted the message without a SID")}
	}
	return sent, nil
}
