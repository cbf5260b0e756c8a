package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// inboundPathPrefix is where Twilio's webhooks arrive on bridgev2's HTTP server.
const inboundPathPrefix = "/_carebridge/twilio/"

// maxWebhookBytes bounds a webhook body; Twilio's largest (an MMS with 10 media and a
// 1,600-character body) is far smaller.
const maxWebhookBytes = 64 << 10

// inboundURL is the webhook URL of a clinic number, as Twilio calls and signs it: with
// Twilio's connection overrides (retries) as its fragment.
func (c *Connector) inboundURL(loginID networkid.UserLoginID) string {
	return sms.WithConnectionOverrides(c.publicBase() + inboundPathPrefix + string(loginID) + "/inbound")
}

// numberWebhooks are the webhooks a clinic number is given: the inbound one, and the
// same path on the second instance (twilio.fallback_url) when one is configured.
func (c *Connector) numberWebhooks(loginID networkid.UserLoginID) sms.NumberWebhooks {
	hooks := sms.NumberWebhooks{SMSURL: c.inboundURL(loginID)}
	if fallback := strings.TrimRight(c.Config.Twilio.FallbackURL, "/"); fallback != "" {
		hooks.SMSFallbackURL = sms.WithConnectionOverrides(fallback + inboundPathPrefix + string(loginID) + "/inbound")
	}
	return hooks
}

// statusURL is where Twilio posts delivery updates of a clinic number's texts, with the
// same connection overrides.
func (c *Connector) statusURL(loginID networkid.UserLoginID) string {
	return sms.WithConnectionOverrides(c.publicBase() + inboundPathPrefix + string(loginID) + "/status")
}

// verifyWebhook reads a Twilio webhook's form and checks that it is for a linked clinic
// number and signed with that number's auth token. On failure it has answered and
// logged (without the body), and returns nil.
func (c *Connector) verifyWebhook(w http.ResponseWriter, r *http.Request, log zerolog.Logger) *bridgev2.UserLogin {
	r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBytes)
	if err := r.ParseForm(); err != nil {
		log.Warn().Err(err).Msg("Rejected unreadable webhook")
		c.webhookRejected(r, metrics.RejectUnreadable)
		http.Error(w, "Unreadable form body", http.StatusBadRequest)
		return nil
	}
	// Not only the cache: right after a restart logins may not be loaded yet, and a text
	// refused now is lost (Twilio does not retry a 404).
	login, err := c.Bridge.GetExistingUserLoginByID(r.Context(), networkid.UserLoginID(r.PathValue("login_id")))
	if err != nil {
		log.Err(err).Msg("Failed to look up clinic number for webhook")
		c.webhookRejected(r, metrics.RejectLookupFailed)
		http.Error(w, "Temporarily unable to process the webhook", http.StatusServiceUnavailable)
		return nil
	} else if login == nil || login.Client == nil {
		log.Warn().Msg("Rejected webhook for a clinic number that is not linked")
		c.webhookRejected(r, metrics.RejectUnknownNumber)
		http.Error(w, ErrUnknownLogin.Error(), http.StatusNotFound)
		return nil
	}
	meta := login.Metadata.(*UserLoginMetadata)
	authToken, err := meta.AuthToken(c.Keys, login.ID)
	if err != nil {
		log.Err(err).Msg("Failed to open the clinic number's Twilio auth token for a webhook")
		c.webhookRejected(r, metrics.RejectTokenFailed)
		http.Error(w, "Temporarily unable to process the webhook", http.StatusServiceUnavailable)
		return nil
	}
	publicURL := sms.PublicRequestURL(c.publicBase(), r)
	if !sms.ValidWebhookSignature(authToken, publicURL, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		// The usual cause is a proxy: Twilio signs the URL it called, which must equal publicURL.
		log.Warn().Str("signed_url_expected", publicURL).
			Bool("signature_present", r.Header.Get("X-Twilio-Signature") != "").
			Msg("Rejected webhook with an invalid Twilio signature (check twilio.public_url_override if behind a proxy)")
		c.webhookRejected(r, metrics.RejectSignature)
		http.Error(w, "Invalid Twilio signature", http.StatusForbidden)
		return nil
	}
	if r.PostForm.Get("AccountSid") != meta.AccountSID {
		log.Warn().Msg("Rejected webhook addressed to another Twilio account")
		c.webhookRejected(r, metrics.RejectOtherAccount)
		http.Error(w, "Webhook is for another Twilio account", http.StatusForbidden)
		return nil
	}
	return login
}

func (c *Connector) webhookLog(r *http.Request, action string) zerolog.Logger {
	return c.Bridge.Log.With().
		Str("action", action).
		Str("login_id", r.PathValue("login_id")).
		Str("remote_addr", r.RemoteAddr).
		Logger()
}

// handleInbound receives a patient's text. It answers only after the text is stored, so
// Twilio retries anything not stored; delivery into Matrix happens after the answer.
func (c *Connector) handleInbound(w http.ResponseWriter, r *http.Request) {
	log := c.webhookLog(r, "twilio inbound webhook")
	login := c.verifyWebhook(w, r, log)
	if login == nil {
		return
	}
	status, err := c.acceptInbound(r.Context(), login, r.PostForm)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(sms.EmptyTwiML))
}

// acceptInbound stores an inbound text whose origin was verified (a signed webhook, or
// the simulator) and wakes the delivery queue. On failure it returns the HTTP status
// and an error whose text may be shown to the sender (no body in it).
func (c *Connector) acceptInbound(ctx context.Context, login *bridgev2.UserLogin, form url.Values) (int, error) {
	status, err := c.storeInbound(ctx, login, form, time.Now(), metrics.InboundStored)
	if status >= http.StatusInternalServerError {
		// Twilio may not retry: the text is in its message log.
		c.catchUp.request(login.ID, false)
	}
	return status, err
}

// storeInbound is acceptInbound for a text that arrived at receivedAt (the catch-up's
// come from Twilio's message log); stored is the metric a new text counts as.
func (c *Connector) storeInbound(ctx context.Context, login *bridgev2.UserLogin, form url.Values, receivedAt time.Time, stored string) (int, error) {
	log := c.Bridge.Log.With().Str("action", "accept inbound text").Str("login_id", string(login.ID)).Logger()
	meta := login.Metadata.(*UserLoginMetadata)
	in, err := sms.ParseInbound(form)
	if err != nil {
		log.Warn().Err(err).Msg("Rejected malformed inbound text")
		c.metrics.Inbound(metrics.InboundMalformed)
		return http.StatusBadRequest, err
	}
	log = log.With().Str("message_sid", in.MessageSID).Logger()
	if in.To != meta.Phone {
		log.Warn().Msg("Rejected inbound text addressed to another number")
		c.metrics.Inbound(metrics.InboundOtherNumber)
		return http.StatusForbidden, errors.New("the text is for another clinic number")
	}
	patient, err := sms.NormalizePhone(in.From, c.Config.DefaultRegion)
	if err != nil {
		// Short codes and alphanumeric senders cannot be answered by SMS from a clinic number.
		log.Warn().Msg("Rejected inbound text from a sender that is not a phone number")
		c.metrics.Inbound(metrics.InboundNotPhone)
		return http.StatusBadRequest, errors.New("the sender is not a phone number")
	}
	inserted, err := c.DB.Receipt.Insert(ctx, &database.Receipt{
		MessageSID:   in.MessageSID,
		LoginID:      string(login.ID),
		PatientPhone: patient,
		Params:       form,
		ReceivedAt:   receivedAt,
	})
	if err != nil {
		// Twilio retries on 5xx; nothing was stored, so nothing is lost.
		log.Err(err).Msg("Failed to store inbound text; Twilio will retry")
		c.metrics.Inbound(metrics.InboundStoreFailed)
		return http.StatusServiceUnavailable, errors.New("temporarily unable to store the message")
	}
	if !inserted {
		log.Debug().Msg("Repeated inbound text: already stored")
		c.metrics.Inbound(metrics.InboundRepeated)
		return http.StatusOK, nil
	}
	log.Debug().Int("media_count", len(in.Media)).Msg("Stored inbound text")
	c.metrics.Inbound(stored)
	c.inbound.wake()
	return http.StatusOK, nil
}

// errNotDelivered is a delivery bridgev2 reported as failed without a reason.
var errNotDelivered = errors.New("bridgev2 did not deliver the message into the room")

// logCtx adds a receipt's identifiers (never its content) to a logger.
func logCtx(log zerolog.Logger, r *database.Receipt) zerolog.Logger {
	return log.With().Str("message_sid", r.MessageSID).Str("login_id", r.LoginID).Logger()
}
