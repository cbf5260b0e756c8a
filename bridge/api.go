package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/integration"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
)

// apiBackend is the bridge side of the integration API: what an EHR asks for is done as
// staff would do it, under the integration's name, audited.
type apiBackend struct{ c *Connector }

var _ integration.Backend = apiBackend{}

// startAPI serves the integration API (when integrations are configured) and delivers
// its events.
func (c *Connector) startAPI(router *http.ServeMux) {
	if len(c.Config.Integrations) == 0 {
		return
	}
	c.API = integration.NewServer(integration.Options{
		DB:           c.DB,
		Integrations: c.Config.Integrations,
		Keys:         c.Keys,
		Backend:      apiBackend{c},
		Software:     c.Version,
		Log:          c.Bridge.Log.With().Str("component", "integration api").Logger(),
	})
	c.API.Register(router)
	c.API.Start(c.Bridge.BackgroundCtx)
	c.Bridge.Log.Info().Int("integrations", len(c.Config.Integrations)).Str("base", c.publicBase()+integration.RESTPrefix).
		Msg("Integration API enabled")
}

// ClinicNumbers is called for a new conversation: the linked numbers and their logins.
func (b apiBackend) ClinicNumbers() map[string]string {
	numbers := map[string]string{}
	for _, login := range b.c.clinicLogins() {
		numbers[login.Metadata.(*UserLoginMetadata).Phone] = string(login.ID)
	}
	return numbers
}

// NormalizePhone is called with a patient number as the integration wrote it.
func (b apiBackend) NormalizePhone(raw string) (string, error) {
	return sms.NormalizePhone(raw, b.c.Config.DefaultRegion)
}

// OpenConversation is called by POST /conversations and FHIR Communication.
func (b apiBackend) OpenConversation(ctx context.Context, actor database.AuditActor, loginID, patient string) (*database.Conversation, bool, error) {
	login := b.c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(loginID))
	if login == nil {
		return nil, false, integration.ErrNumberNotReady
	}
	if patient == login.Metadata.(*UserLoginMetadata).Phone {
		return nil, false, &integration.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "patient.phone",
			Message: "patient.phone is the clinic's own number"}
	}
	portal, created, err := b.c.startConversation(ctx, login, patient, actor, apiName(actor), "integration api")
	if err != nil {
		return nil, false, err
	}
	conv, err := b.c.conversationOf(ctx, portal)
	if err != nil {
		return nil, false, err
	}
	return conv, created, nil
}

// SetPatientName is called when the integration names the patient.
func (b apiBackend) SetPatientName(ctx context.Context, actor database.AuditActor, conv *database.Conversation, name string) error {
	err := b.c.Conversations.SetPatientName(ctx, conv, actor, name)
	if errors.Is(err, conversation.ErrNotShown) {
		// Stored: the room shows it the next time it is named.
		zerolog.Ctx(ctx).Err(err).Msg("Failed to show the patient's name in the room")
		return nil
	}
	return err
}

// SetDOB is called with the patient's date of birth (YYYY-MM-DD).
func (b apiBackend) SetDOB(ctx context.Context, actor database.AuditActor, conv *database.Conversation, dob string) error {
	err := b.c.Conversations.SetDOB(ctx, conv, actor, dob)
	if errors.Is(err, securechat.ErrInvalidDOB) {
		return &integration.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "patient.birth_date",
			Message: "patient.birth_date must be a past date such as 1980-02-03"}
	}
	return err
}

// SetSecure is called when the integration asks for secure mode.
func (b apiBackend) SetSecure(ctx context.Context, actor database.AuditActor, conv *database.Conversation) error {
	if err := b.c.Conversations.SetMode(ctx, conv, database.ModeSecure, actor); !errors.Is(err, conversation.ErrSameMode) {
		return err
	}
	return nil
}

// CheckTemplate is called before anything is done for a request naming a template.
func (b apiBackend) CheckTemplate(name string) error {
	var unknown *conversation.UnknownTemplateError
	if _, err := b.c.Conversations.Template(name); errors.As(err, &unknown) {
		return &integration.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: "template",
			Message: fmt.Sprintf("no template %q; the templates are: %s", name, strings.Join(unknown.Names, ", "))}
	}
	return nil
}

// Template is called with a template name instead of a message.
func (b apiBackend) Template(ctx context.Context, actor database.AuditActor, conv *database.Conversation, name string) (string, error) {
	if err := b.CheckTemplate(name); err != nil {
		return "", err
	}
	return b.c.Conversations.FillTemplate(ctx, conv, actor, name)
}

// Send is called for a message from the integration: it goes by the conversation's mode
// (or into the secure chat when asked), and the room sees what went out.
func (b apiBackend) Send(ctx context.Context, actor database.AuditActor, conv *database.Conversation, text string, secure bool) (*integration.Sent, error) {
	if login := b.c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(conv.LoginID)); login == nil {
		return nil, integration.ErrNumberNotReady
	}
	portal, err := b.portal(ctx, conv)
	if err != nil {
		return nil, err
	}
	sent, err := b.c.Conversations.Send(ctx, conv, conversation.Outgoing{Actor: actor, Sender: apiName(actor), Text: text,
		Kind: outbox.KindAPI, Secure: secure})
	var refusal *outbox.Refusal
	switch {
	case errors.Is(err, outbox.ErrOptedOut):
		return nil, integration.ErrOptedOut
	case errors.Is(err, outbox.ErrTooLong) && errors.As(err, &refusal):
		return nil, &integration.Error{Status: http.StatusUnprocessableEntity, Code: "too_long", Field: "text", Message: refusal.Words}
	case err != nil && secure:
		return nil, err
	case err != nil:
		zerolog.Ctx(ctx).Err(err).Msg("Failed to text a message from the integration")
		reason := conversation.SendErrorWords(err)
		b.c.sendNotice(ctx, portal, fmt.Sprintf("⚠️ %s could not text the patient: %s", apiName(actor), reason))
		return nil, &integration.Error{Status: http.StatusBadGateway, Code: "send_failed", Message: "the text was not sent: " + reason}
	}
	if sent.Via == database.ModeSecure {
		b.c.sendNotice(ctx, portal, fmt.Sprintf("🔒 %s sent to the secure chat: %s", apiName(actor), text))
		return &integration.Sent{Via: database.ModeSecure, SecureID: sent.Secure.ID, Status: "sent"}, nil
	}
	if err = b.c.audited(ctx, convAudit(conv, actor, database.EventMessageSent, database.OutcomeOK, "sms"), nil); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to audit a message sent through the API")
	}
	status := b.c.Conversations.TrackOnNotice(ctx, sent.SMS, b.c.sendNotice(ctx, portal, fmt.Sprintf("%s texted: %s", apiName(actor), text)).String())
	return &integration.Sent{Via: database.ModeSMS, MessageSID: sent.SMS.SID, Status: status}, nil
}

// LastActivity is the newest message the bridge put into the room or sent from it.
func (b apiBackend) LastActivity(ctx context.Context, conv *database.Conversation) time.Time {
	key := networkid.PortalKey{ID: networkid.PortalID(conv.PortalID), Receiver: networkid.UserLoginID(conv.LoginID)}
	last := conv.CreatedAt
	if msg, err := b.c.Bridge.DB.Message.GetLastPartAtOrBeforeTime(ctx, key, time.Now().Add(time.Minute)); err == nil && msg != nil && msg.Timestamp.After(last) {
		last = msg.Timestamp
	}
	if out, err := b.c.DB.Outbound.LastAt(ctx, conv.LoginID, conv.PortalID); err == nil && out.After(last) {
		last = out
	}
	if secure, err := b.c.DB.Secure.LastAt(ctx, conv.LoginID, conv.PortalID); err == nil && secure.After(last) {
		last = secure
	}
	return last
}

// UnreadByPatient counts the secure chat's staff messages the patient has not read.
func (b apiBackend) UnreadByPatient(ctx context.Context, conv *database.Conversation) int {
	n, err := b.c.DB.Secure.UnreadStaffCount(ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to count unread secure messages")
	}
	return n
}

func (b apiBackend) portal(ctx context.Context, conv *database.Conversation) (*bridgev2.Portal, error) {
	portal, err := b.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(conv.PortalID),
		Receiver: networkid.UserLoginID(conv.LoginID)})
	if err != nil {
		return nil, err
	} else if portal == nil || portal.MXID == "" {
		return nil, fmt.Errorf("conversation %s has no room", conv.PortalID)
	}
	return portal, nil
}

// apiName is how the room names an integration: "Integration ehr".
func apiName(actor database.AuditActor) string {
	return "Integration " + actor.Name
}

// ---- events -------------------------------------------------------------------------

// apiEvent hands an event about a portal's conversation to the integration API, if on.
func (c *Connector) apiEvent(ctx context.Context, portal *bridgev2.Portal, emit func(conv *database.Conversation)) {
	if c.API == nil || portal == nil {
		return
	}
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for an integration event")
		return
	}
	emit(conv)
}
