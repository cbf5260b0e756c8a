package bridge

import (
	"errors"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// inboundPathPrefix is where Twilio's webhooks arrive on bridgev2's HTTP server.
const inboundPathPrefix = "/_carebridge/twilio/"

// maxWebhookBytes bounds a webhook body; Twilio's largest (an MMS with 10 media and a
// 1,600-character body) is far smaller.
const maxWebhookBytes = 64 << 10

// inboundURL is the webhook URL of a clinic number, as Twilio calls and signs it.
func (c *Connector) inboundURL(loginID networkid.UserLoginID) string {
	return c.publicBase() + inboundPathPrefix + string(loginID) + "/inbound"
}

// statusURL is where Twilio posts delivery updates of a clinic number's texts.
func (c *Connector) statusURL(loginID networkid.UserLoginID) string {
	return c.publicBase() + inboundPathPrefix + string(loginID) + "/status"
}

// verifyWebhook reads a Twilio webhook's form and checks that it is for a linked clinic
// number and signed with that number's auth token. On failure it has answered and
// logged (without the body), and returns nil.
func (c *Connector) verifyWebhook(w http.ResponseWriter, r *http.Request, log zerolog.Logger) *bridgev2.UserLogin {
	r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBytes)
	if err := r.ParseForm(); err != nil {
		log.Warn().Err(err).Msg("Rejected unreadable webhook")
		http.Error(w, "Unreadable form body", http.StatusBadRequest)
		return nil
	}
	login := c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(r.PathValue("login_id")))
	if login == nil {
		log.Warn().Msg("Rejected webhook for a clinic number that is not linked")
		http.Error(w, ErrUnknownLogin.Error(), http.StatusNotFound)
		return nil
	}
	meta := login.Metadata.(*UserLoginMetadata)
	publicURL := sms.PublicRequestURL(c.publicBase(), r)
	if !sms.ValidSignature(meta.AuthToken, publicURL, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		// The usual cause is a proxy: Twilio signs the URL it called, which must equal publicURL.
		log.Warn().Str("signed_url_expected", publicURL).
			Bool("signature_present", r.Header.Get("X-Twilio-Signature") != "").
			Msg("Rejected webhook with an invalid Twilio signature (check twilio.public_url_override if behind a proxy)")
		http.Error(w, "Invalid Twilio signature", http.StatusForbidden)
		return nil
	}
	if r.PostForm.Get("AccountSid") != meta.AccountSID {
		log.Warn().Msg("Rejected webhook addressed to another Twilio account")
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
	loginID := login.ID
	meta := login.Metadata.(*UserLoginMetadata)
	in, err := sms.ParseInbound(r.PostForm)
	if err != nil {
		log.Warn().Err(err).Msg("Rejected malformed inbound webhook")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log = log.With().Str("message_sid", in.MessageSID).Logger()
	if in.To != meta.Phone {
		log.Warn().Msg("Rejected inbound webhook addressed to another number")
		http.Error(w, "Webhook is for another clinic number", http.StatusForbidden)
		return
	}
	patient, err := sms.NormalizePhone(in.From, c.Config.DefaultRegion)
	if err != nil {
		// Short codes and alphanumeric senders cannot be answered by SMS from a clinic number.
		log.Warn().Msg("Rejected inbound text from a sender that is not a phone number")
		http.Error(w, "Sender is not a phone number", http.StatusBadRequest)
		return
	}
	inserted, err := c.DB.Receipt.Insert(r.Context(), &database.Receipt{
		MessageSID:   in.MessageSID,
		LoginID:      string(loginID),
		PatientPhone: patient,
		Params:       r.PostForm,
		ReceivedAt:   time.Now(),
	})
	if err != nil {
		// Twilio retries on 5xx; nothing was stored, so nothing is lost.
		log.Err(err).Msg("Failed to store inbound text; Twilio will retry")
		http.Error(w, "Temporarily unable to store the message", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(sms.EmptyTwiML))
	if !inserted {
		log.Debug().Msg("Repeated inbound webhook: already stored")
		return
	}
	log.Debug().Int("media_count", len(in.Media)).Msg("Stored inbound text")
	c.inbound.wake()
}

// errNotDelivered is a delivery bridgev2 reported as failed without a reason.
var errNotDelivered = errors.New("bridgev2 did not deliver the message into the room")

// logCtx adds a receipt's identifiers (never its content) to a logger.
func logCtx(log zerolog.Logger, r *database.Receipt) zerolog.Logger {
	return log.With().Str("message_sid", r.MessageSID).Str("login_id", r.LoginID).Logger()
}
