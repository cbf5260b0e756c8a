package conversation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
)

func withTemplates(e *env) {
	e.svc.Config.Templates = map[string]string{
		"hours": "Hi {patient_name}, {clinic_name} is open 8-5.",
		"chat":  "Read your message here: {link}",
		"long":  strings.Repeat("word ", 400),
	}
}

func TestUnknownTemplateNamesTheTemplates(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		withTemplates(e)
		text, err := e.svc.Template(" HOURS ")
		require.NoError(t, err, "any case, any spaces")
		assert.Equal(t, "Hi {patient_name}, {clinic_name} is open 8-5.", text)

		_, err = e.svc.SendTemplate(ctx, e.conv, nurse, "nope", "$cmd")
		var unknown *conversation.UnknownTemplateError
		require.ErrorAs(t, err, &unknown)
		assert.Equal(t, []string{"chat", "hours", "long"}, unknown.Names)
		assert.Empty(t, e.texts.sent)
	})
}

func TestSendTemplateTextsInSMSMode(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		withTemplates(e)
		text, err := e.svc.SendTemplate(ctx, e.conv, nurse, "hours", "$cmd")
		require.NoError(t, err)
		assert.Equal(t, "Hi, Riverside Clinic is open 8-5.", text, "no name yet: no gap")
		require.Len(t, e.texts.sent, 1)
		assert.Equal(t, outbox.KindTemplate, e.texts.sent[0].Kind)
		assert.Equal(t, "$cmd", e.texts.sent[0].EventID, "a failure later answers the command")
		assert.Equal(t, []string{"Sent template hours by SMS: Hi, Riverside Clinic is open 8-5."}, e.rooms.notices)
		rows := e.audited(t, ctx, database.EventTemplateSent)
		require.Len(t, rows, 1)
		assert.Equal(t, "hours by sms", rows[0].Detail)
		assert.Equal(t, nurse, rows[0].Actor)

		// {link} texted: a fresh link is issued for it.
		text, err = e.svc.SendTemplate(ctx, e.conv, nurse, "chat", "")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(text, "Read your message here: https://clinic.example/"), text)
		active, err := e.db.Link.CountActive(ctx, e.conv.LoginID, e.conv.PortalID, time.Now())
		require.NoError(t, err)
		assert.Equal(t, 1, active)

		_, err = e.svc.SendTemplate(ctx, e.conv, nurse, "long", "")
		var tooMany *conversation.TooManySegmentsError
		require.ErrorAs(t, err, &tooMany)
		assert.Equal(t, 10, tooMany.Limit)
		assert.Len(t, e.texts.sent, 2, "too long: not texted")

		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, e.conv.LoginID, e.conv.PortalID, true))
		conv := e.stored(t, ctx)
		_, err = e.svc.SendTemplate(ctx, conv, nurse, "chat", "")
		assert.ErrorIs(t, err, outbox.ErrOptedOut)
		active, err = e.db.Link.CountActive(ctx, e.conv.LoginID, e.conv.PortalID, time.Now())
		require.NoError(t, err)
		assert.Equal(t, 1, active, "no link issued for an opted-out patient")
		assert.Len(t, e.audited(t, ctx, database.EventTemplateSent), 2)
	})
}

func TestSendTemplateKeepsForSecureChatInSecureMode(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		withTemplates(e)
		require.NoError(t, e.svc.SetPatientName(ctx, e.conv, nurse, "Maria Lopez"))
		require.NoError(t, e.svc.SetMode(ctx, e.conv, database.ModeSecure, nurse))
		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, e.conv.LoginID, e.conv.PortalID, true))
		conv := e.stored(t, ctx)
		e.rooms.notices = nil

		text, err := e.svc.SendTemplate(ctx, conv, nurse, "chat", "$cmd")
		require.NoError(t, err, "the secure chat takes it though the patient opted out of texts")
		assert.NotContains(t, text, "https://", "{link} is words in the secure chat: the alert is the one live link")
		active, err := e.db.Link.CountActive(ctx, conv.LoginID, conv.PortalID, time.Now())
		require.NoError(t, err)
		assert.Zero(t, active)
		assert.Empty(t, e.texts.sent, "nothing texted")
		assert.Equal(t, []string{conv.PortalID}, e.rooms.keptFor, "the patient is alerted")
		rows, err := e.db.Secure.List(ctx, conv.LoginID, conv.PortalID, 0, 10)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		assert.Equal(t, "nurse", rows[0].SenderName, "under the staff member's name")
		assert.Equal(t, []string{"🔒 Sent template chat to the secure chat: " + text}, e.rooms.notices)

		text, err = e.svc.SendTemplate(ctx, conv, nurse, "hours", "")
		require.NoError(t, err)
		assert.Equal(t, "Hi Maria Lopez, Riverside Clinic is open 8-5.", text)
		audits := e.audited(t, ctx, database.EventTemplateSent)
		require.Len(t, audits, 2)
		assert.Equal(t, "chat by secure", audits[0].Detail)
	})
}
