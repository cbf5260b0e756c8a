package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/carebridge/carebridge/sms"
)

// Twilio's webhook connection overrides (docs: "Webhook connection overrides"): key=value
// pairs in the webhook URL's fragment. Without a fragment Twilio calls an SMS webhook
// once and logs error 11200 when it fails; it does not retry.
type connectionOverrides struct {
	connectTimeout time.Duration // ct: 100-10000 ms, default 5000
	readTimeout    time.Duration // rt: 100-15000 ms, default 15000
	totalTime      time.Duration // tt: 100-15000 ms, default 15000, all attempts together
	retries        int           // rc: 0-5, default 1 when a fragment is given
	policy         []string      // rp: 4xx, 5xx, ct, rt or all; default ct
}

// webhookErrorURL is the code Twilio logs for a webhook that failed (HTTP retrieval
// failure) and passes to the fallback URL as ErrorCode.
const twilioErrHTTPRetrieval = 11200

// parseConnectionOverrides reads a webhook URL's fragment. Twilio refuses (and logs)
// values out of range; the fake answers that with an error naming the override.
func parseConnectionOverrides(rawURL string) (connectionOverrides, error) {
	o := connectionOverrides{connectTimeout: 5 * time.Second, readTimeout: 15 * time.Second, totalTime: 15 * time.Second}
	_, fragment, ok := strings.Cut(rawURL, "#")
	if !ok {
		return o, nil
	}
	o.retries, o.policy = 1, []string{"ct"}
	values, err := url.ParseQuery(fragment)
	if err != nil {
		return o, fmt.Errorf("connection overrides %q do not parse: %w", fragment, err)
	}
	millis := func(key string, lo, hi int, into *time.Duration) error {
		if raw := values.Get(key); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("connection override %s=%q is not %d-%d (Twilio logs it as an error)", key, raw, lo, hi)
			}
			*into = time.Duration(n) * time.Millisecond
		}
		return nil
	}
	if err = errors.Join(millis("ct", 100, 10000, &o.connectTimeout), millis("rt", 100, 15000, &o.readTimeout),
		millis("tt", 100, 15000, &o.totalTime)); err != nil {
		return o, err
	}
	if raw := values.Get("rc"); raw != "" {
		if o.retries, err = strconv.Atoi(raw); err != nil || o.retries < 0 || o.retries > 5 {
			return o, fmt.Errorf("connection override rc=%q is not 0-5 (Twilio logs error 11242)", raw)
		}
	}
	if raw := values.Get("rp"); raw != "" {
		o.policy = strings.Split(raw, ",")
		for _, p := range o.policy {
			if !slices.Contains([]string{"4xx", "5xx", "ct", "rt", "all"}, p) {
				return o, fmt.Errorf("connection override rp=%q holds %q (Twilio logs error 11243)", raw, p)
			}
		}
	}
	return o, nil
}

// retries reports whether a failed attempt of class (4xx, 5xx, ct or rt) is retried.
func (o connectionOverrides) retriesOn(class string) bool {
	return class != "" && (slices.Contains(o.policy, class) || slices.Contains(o.policy, "all"))
}

// webhookCall is the outcome of calling one webhook URL, retries included.
type webhookCall struct {
	URL        string
	Attempts   int
	StatusCode int // the last answer; 0 when none came
	Header     http.Header
	Body       string
	Err        error // the last attempt's transport error
}

func (c webhookCall) ok() bool { return c.Err == nil && c.StatusCode >= 200 && c.StatusCode <= 299 }

// callWithOverrides calls a webhook as Twilio does: signed over the URL as configured
// (fragment included; the request itself carries no fragment), retried as its
// connection overrides say, within their total time.
func (f *FakeTwilio) callWithOverrides(ctx context.Context, method, rawURL string, params url.Values, authToken, idempotencyToken string) webhookCall {
	call := webhookCall{URL: rawURL}
	o, err := parseConnectionOverrides(rawURL)
	if err != nil {
		call.Err = err
		return call
	}
	client := &http.Client{
		Timeout: o.readTimeout + o.connectTimeout,
		Transport: &http.Transport{
			DisableKeepAlives:     true,
			DialContext:           (&net.Dialer{Timeout: o.connectTimeout}).DialContext,
			ResponseHeaderTimeout: o.readTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(o.totalTime)
	for {
		call.Attempts++
		attemptCtx, cancel := context.WithDeadline(ctx, deadline)
		resp, err := f.callWebhookWith(attemptCtx, client, method, rawURL, params, authToken, idempotencyToken)
		class := ""
		call.StatusCode, call.Header, call.Body, call.Err = 0, nil, "", err
		switch {
		case err != nil:
			var opErr *net.OpError
			if errors.As(err, &opErr) && opErr.Op == "dial" {
				class = "ct"
			} else if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				class = "rt"
			}
		default:
			data, readErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			call.StatusCode, call.Header, call.Body, call.Err = resp.StatusCode, resp.Header, string(data), readErr
			switch {
			case resp.StatusCode >= 500:
				class = "5xx"
			case resp.StatusCode >= 400:
				class = "4xx"
			}
		}
		cancel()
		if call.ok() || ctx.Err() != nil || call.Attempts > o.retries || !o.retriesOn(class) || !time.Now().Before(deadline) {
			return call
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// callNumberWebhook calls the number's SmsUrl and, when it failed (retries included),
// its SmsFallbackUrl with the same parameters plus ErrorCode and ErrorUrl, as Twilio does.
func (f *FakeTwilio) callNumberWebhook(ctx context.Context, res InboundResult, fallbackURL, fallbackMethod, authToken string) (InboundResult, error) {
	primary := f.callWithOverrides(ctx, res.Method, res.URL, res.Params, authToken, res.IdempotencyToken)
	res.Attempts = primary.Attempts
	final := primary
	if !primary.ok() && fallbackURL != "" {
		params := cloneValues(res.Params)
		params.Set("ErrorCode", strconv.Itoa(twilioErrHTTPRetrieval))
		params.Set("ErrorUrl", res.URL)
		final = f.callWithOverrides(ctx, fallbackMethod, fallbackURL, params, authToken, res.IdempotencyToken)
		res.FallbackAttempts = final.Attempts
		res.FallbackURL = fallbackURL
	}
	res.StatusCode, res.Header, res.Body = final.StatusCode, final.Header, final.Body
	if final.Err != nil && final.StatusCode == 0 {
		return res, fmt.Errorf("failed to call webhook %s: %w", final.URL, final.Err)
	}
	return res, final.Err
}

// signedURL is the URL Twilio signs for a webhook: as configured, fragment included,
// with a GET webhook's parameters added to its query (before the fragment).
func signedURL(method, rawURL string, params url.Values) (signed, request string) {
	base, fragment, hasFragment := strings.Cut(rawURL, "#")
	if method == http.MethodGet {
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		base += sep + params.Encode()
	}
	signed = base
	if hasFragment {
		signed += "#" + fragment
	}
	return signed, base
}

// signWebhook is X-Twilio-Signature for a call of rawURL with params (POST) or none (GET).
func signWebhook(authToken, method, rawURL string, params url.Values) string {
	signed, _ := signedURL(method, rawURL, params)
	if method == http.MethodGet {
		params = nil
	}
	return sms.SignWebhook(authToken, signed, params)
}
