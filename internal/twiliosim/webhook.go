package twiliosim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/carebridge/carebridge/sms"
)

// simulatorWebhookClient calls the bridge's webhooks. Twilio follows no redirects.
var simulatorWebhookClient = &http.Client{
	Timeout:       simulatorDeliverTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// PostWebhook delivers an inbound form the way Twilio does, and can serve as
// Options.Deliver: it posts the form to the SMS webhook that ConfigureWebhooks
// set for the clinic number in its To field, signed (X-Twilio-Signature) with the auth
// token of the account that linked the number. An answer other than 2xx is an error that
// carries the bridge's status and the start of its answer.
func (s *Simulator) PostWebhook(ctx context.Context, form url.Values) error {
	clinic := form.Get("To")
	s.mu.Lock()
	var smsURL, authToken string
	if num := s.clinics[clinic]; num != nil {
		smsURL, authToken = num.smsURL, num.authToken
	}
	s.mu.Unlock()
	if smsURL == "" {
		return fmt.Errorf("the clinic number %s is not linked to the bridge (no SMS webhook is set for it): link it first", truncate(clinic, 20))
	}
	return s.postSigned(ctx, smsURL, form, authToken)
}

// postSigned posts a form to one of the bridge's webhooks as Twilio does: signed with the
// account's auth token (X-Twilio-Signature), not following redirects. An answer other
// than 2xx is an error that carries the bridge's status and the start of its answer.
func (s *Simulator) postSigned(ctx context.Context, rawURL string, form url.Values, authToken string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("failed to build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.SignWebhook(authToken, rawURL, form))
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", newSimulatedSID(""))
	resp, err := simulatorWebhookClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to reach the bridge's webhook: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the bridge answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(truncate(string(answer), 200)))
	}
	return nil
}
