package conversation_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
)

// rooms records what the conversation asked of its room.
type rooms struct {
	optOuts []bool
	mu      sync.Mutex
	calls   []string
	notices []string
	nameErr error
	shown   string
	keptFor []string
}

func (r *rooms) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *rooms) Notice(_ context.Context, _ *database.Conversation, text string) string {
	r.record("notice")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, text)
	return "$notice"
}
func (r *rooms) StaffName(_ context.Context, _ *database.Conversation, userID string) string {
	return strings.TrimPrefix(strings.SplitN(userID, ":", 2)[0], "@")
}
func (r *rooms) MemberName(_ context.Context, _ *database.Conversation, userID string) string {
	if name, ok := displayNames[userID]; ok {
		return name
	}
	return userID
}
func (r *rooms) Link(_ context.Context, conv *database.Conversation) string {
	return "https://matrix.to/#/!" + conv.PortalID + ":clinic.example"
}
func (r *rooms) ShowState(context.Context, *database.Conversation) { r.record("state") }
func (r *rooms) ShowMode(context.Context, *database.Conversation)  { r.record("mode") }
func (r *rooms) ShowPatientName(_ context.Context, _ *database.Conversation, name string) error {
	r.record("name")
	r.shown = name
	return r.nameErr
}
func (r *rooms) OptedOut(_ context.Context, _ *database.Conversation, optedOut bool) {
	r.record("event")
	r.optOuts = append(r.optOuts, optedOut)
}
func (r *rooms) StaffMessageKept(_ context.Context, conv *database.Conversation) {
	r.record("alert")
	r.keptFor = append(r.keptFor, conv.PortalID)
}

// displayNames are the staff's display names in the rooms.
var displayNames = map[string]string{"@nurse:clinic.example": "Nurse Kim", "@dr.lee:clinic.example": "Dr Lee"}

// texts records what went to the outbox.
type texts struct {
	mu       sync.Mutex
	sent     []*outbox.Text
	optedOut bool
}

// Enqueue refuses what the outbox would (opted out), and queues the rest.
func (t *texts) Enqueue(_ context.Context, text *outbox.Text) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.optedOut {
		return &outbox.Refusal{Reason: outbox.ErrOptedOut, Words: outbox.ErrOptedOut.Error()}
	}
	t.sent = append(t.sent, text)
	return nil
}

// Send refuses what the outbox would (opted out), and accepts the rest at once.
func (t *texts) Send(_ context.Context, text *outbox.Text) (*sms.SentMessage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.optedOut {
		return nil, &outbox.Refusal{Reason: outbox.ErrOptedOut, Words: outbox.ErrOptedOut.Error()}
	}
	t.sent = append(t.sent, text)
	return &sms.SentMessage{SID: "SM00000000000000000000000000000001", Status: "queued"}, nil
}

func (t *texts) bodies() (out []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, text := range t.sent {
		out = append(out, string(text.Kind)+": "+text.Body)
	}
	return out
}

type env struct {
	svc   *conversation.Service
	db    *database.Database
	rooms *rooms
	texts *texts
	conv  *database.Conversation
	keys  *securechat.Keyring
}

func eachDB(t *testing.T, fn func(t *testing.T, ctx context.Context, e *env)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))
			cfg := &config.Config{ClinicName: "Riverside Clinic", MaxSegments: 10,
				Keywords: config.KeywordsConfig{OptOutReply: "You are unsubscribed.", OptInReply: "You are subscribed again.",
					HelpText: "Riverside Clinic: call 555-0100."},
				SecureChat: config.SecureChatConfig{LinkLifetime: 72 * time.Hour, Language: "en"}}
			keys, err := securechat.NewKeyring("k1", make([]byte, 32))
			require.NoError(t, err)
			secure := securechat.NewServiceWithKeys(db, &cfg.SecureChat, keys, cfg.ClinicName, "https://clinic.example")
			r, tx := &rooms{}, &texts{}
			conv, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550001111", PortalID: "15551234567",
				ClinicPhone: "+15550001111", PatientPhone: "+15551234567", Mode: database.ModeSMS})
			require.NoError(t, err)
			svc := &conversation.Service{Config: cfg, DB: db, Rooms: r, Texts: tx, Secure: secure, Alerts: r, Events: r, BotMXID: "@smsbot:clinic.example"}
			fn(t, ctx, &env{svc: svc, db: db, rooms: r, texts: tx, conv: conv, keys: keys})
		})
	}
}

func (e *env) stored(t *testing.T, ctx context.Context) *database.Conversation {
	conv, err := e.db.Conversation.Get(ctx, e.conv.LoginID, e.conv.PortalID)
	require.NoError(t, err)
	return conv
}

// nurse is the staff member of the tests.
var nurse = database.StaffActor("@nurse:clinic.example")

func (e *env) audited(t *testing.T, ctx context.Context, event database.AuditEvent) []*database.AuditEntry {
	rows, err := e.db.Audit.Find(ctx, e.conv.LoginID, e.conv.PortalID, event)
	require.NoError(t, err)
	return rows
}

func TestSetMode(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		require.NoError(t, e.svc.SetMode(ctx, e.conv, database.ModeSecure, nurse))
		assert.Equal(t, database.ModeSecure, e.stored(t, ctx).Mode)
		assert.Equal(t, database.ModeSecure, e.conv.Mode, "the caller's copy follows")
		rows := e.audited(t, ctx, "mode switched")
		require.Len(t, rows, 1)
		assert.Equal(t, nurse, rows[0].Actor)
		assert.Equal(t, "secure", rows[0].Detail)
		assert.Equal(t, []string{"mode", "state", "notice"}, e.rooms.calls, "what can be sent, then topic and state, then the notice")
		assert.Equal(t, []string{conversation.SecureModeNotice}, e.rooms.notices)

		err := e.svc.SetMode(ctx, e.conv, database.ModeSecure, nurse)
		assert.ErrorIs(t, err, conversation.ErrSameMode)
		assert.Len(t, e.audited(t, ctx, "mode switched"), 1, "no second audit row for no change")
		assert.Len(t, e.rooms.notices, 1)

		require.NoError(t, e.svc.SetMode(ctx, e.conv, database.ModeSMS, database.IntegrationActor("ehr")))
		assert.Equal(t, database.ModeSMS, e.stored(t, ctx).Mode)
		assert.Equal(t, conversation.SMSModeNotice, e.rooms.notices[1])
		assert.Len(t, e.audited(t, ctx, "mode switched"), 2)
	})
}

func TestSetPatientName(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		require.NoError(t, e.svc.SetPatientName(ctx, e.conv, nurse, "  Maria   Lopez "))
		assert.Equal(t, "Maria Lopez", e.stored(t, ctx).PatientName)
		assert.Equal(t, "Maria Lopez", e.rooms.shown)
		assert.Len(t, e.audited(t, ctx, "patient named"), 1)

		for raw, want := range map[string]error{"   ": conversation.ErrNameEmpty, strings.Repeat("é", 101): conversation.ErrNameTooLong} {
			assert.ErrorIs(t, e.svc.SetPatientName(ctx, e.conv, nurse, raw), want)
		}
		assert.Equal(t, "Maria Lopez", e.stored(t, ctx).PatientName, "a refused name changes nothing")
		assert.Len(t, e.audited(t, ctx, "patient named"), 1)

		e.rooms.nameErr = errors.New("homeserver down")
		err := e.svc.SetPatientName(ctx, e.conv, nurse, "Maria L. Lopez")
		assert.ErrorIs(t, err, conversation.ErrNotShown)
		assert.Equal(t, "Maria L. Lopez", e.stored(t, ctx).PatientName, "stored though not shown")
	})
}

func TestTextLink(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		require.NoError(t, e.db.Conversation.SetPatientLanguage(ctx, e.conv.LoginID, e.conv.PortalID, "es"))
		conv := e.stored(t, ctx)
		require.NoError(t, e.svc.TextLink(ctx, conv, outbox.KindAlert, "$cmd", nurse, securechat.AlertText))
		require.Len(t, e.texts.sent, 1)
		sent := e.texts.sent[0]
		assert.Equal(t, outbox.KindAlert, sent.Kind)
		assert.Equal(t, "+15551234567", sent.To)
		assert.Equal(t, "+15550001111", sent.From)
		assert.Equal(t, "$cmd", sent.EventID)
		assert.Equal(t, "@smsbot:clinic.example", sent.SenderMXID)
		assert.True(t, strings.HasPrefix(sent.Body, "Riverside Clinic: tiene un mensaje seguro nuevo. Ábralo aquí: https://clinic.example/"),
			"in the language the patient chose: %q", sent.Body)
		active, err := e.db.Link.CountActive(ctx, conv.LoginID, conv.PortalID, time.Now())
		require.NoError(t, err)
		assert.Equal(t, 1, active)
		assert.Contains(t, e.rooms.calls, "state", "the room shows the link's expiry")

		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, conv.LoginID, conv.PortalID, true))
		conv = e.stored(t, ctx)
		err = e.svc.TextLink(ctx, conv, outbox.KindAlert, "", database.SystemActor, securechat.AlertText)
		assert.ErrorIs(t, err, outbox.ErrOptedOut)
		var refusal *outbox.Refusal
		assert.ErrorAs(t, err, &refusal)
		assert.Len(t, e.texts.sent, 1, "nothing texted to an opted-out patient")
		active, err = e.db.Link.CountActive(ctx, conv.LoginID, conv.PortalID, time.Now())
		require.NoError(t, err)
		assert.Equal(t, 1, active, "and no link issued for nothing")
	})
}

func TestKeepForSecureChat(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		msg, err := e.svc.KeepForSecureChat(ctx, e.conv, database.IntegrationActor("ehr"), "Integration ehr", "Your lab results are in", "")
		require.NoError(t, err)
		assert.Equal(t, "Your lab results are in", msg.Text)
		rows, err := e.db.Secure.List(ctx, e.conv.LoginID, e.conv.PortalID, 0, 10)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		assert.NotContains(t, string(rows[0].Body), "lab results", "sealed at rest")
		assert.Equal(t, []string{e.conv.PortalID}, e.rooms.keptFor, "the patient is alerted")
		assert.Empty(t, e.texts.sent, "nothing clinical is texted")
	})
}

func TestKeyword(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		require.NoError(t, e.svc.Keyword(ctx, e.conv, sms.KeywordOptOut, " stop ", false))
		assert.True(t, e.stored(t, ctx).OptedOut)
		assert.True(t, e.conv.OptedOut)
		assert.Len(t, e.audited(t, ctx, "opted out"), 1)
		assert.Equal(t, []bool{true}, e.rooms.optOuts, "the integration hears it")
		assert.Equal(t, []string{`The patient texted "stop" and has opted out: nothing will be sent to this number until they text START.`}, e.rooms.notices)
		assert.Equal(t, []string{"keyword_reply: You are unsubscribed."}, e.texts.bodies(), "the confirmation goes though they opted out")

		// A redelivered STOP changes nothing twice.
		require.NoError(t, e.svc.Keyword(ctx, e.conv, sms.KeywordOptOut, "STOP", false))
		assert.Len(t, e.audited(t, ctx, "opted out"), 1)
		assert.Len(t, e.texts.sent, 1)

		// Twilio answered START itself (Advanced Opt-Out): recorded, not answered twice.
		require.NoError(t, e.svc.Keyword(ctx, e.conv, sms.KeywordOptIn, "START", true))
		assert.False(t, e.stored(t, ctx).OptedOut)
		assert.Len(t, e.audited(t, ctx, "opted in"), 1)
		assert.Len(t, e.texts.sent, 1)
		assert.Equal(t, []bool{true, false}, e.rooms.optOuts)

		require.NoError(t, e.svc.Keyword(ctx, e.conv, sms.KeywordHelp, "HELP", false))
		assert.Equal(t, "keyword_reply: Riverside Clinic: call 555-0100.", e.texts.bodies()[1])
		assert.Len(t, e.rooms.notices, 2, "HELP changes nothing the room must know")
	})
}

func TestSendByMode(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		msg := conversation.Outgoing{Actor: database.StaffActor("@kim:clinic.example"), Sender: "Nurse Kim", Text: "Your appointment is at 3pm",
			Body: "Nurse Kim: Your appointment is at 3pm", Kind: outbox.KindFollowUp}
		sent, err := e.svc.Send(ctx, e.conv, msg)
		require.NoError(t, err)
		assert.Equal(t, database.ModeSMS, sent.Via)
		assert.Equal(t, []string{"follow_up: Nurse Kim: Your appointment is at 3pm"}, e.texts.bodies(), "SMS mode texts the signed body")
		assert.Empty(t, e.rooms.keptFor)

		secureOnce := msg
		secureOnce.Secure = true
		sent, err = e.svc.Send(ctx, e.conv, secureOnce)
		require.NoError(t, err)
		assert.Equal(t, database.ModeSecure, sent.Via, "asked for the secure chat")
		assert.Equal(t, "Your appointment is at 3pm", sent.Secure.Text)
		assert.Equal(t, "Nurse Kim", sent.Secure.SenderName)
		assert.Len(t, e.texts.sent, 1, "nothing more texted")

		require.NoError(t, e.svc.SetMode(ctx, e.conv, database.ModeSecure, database.StaffActor("@kim:clinic.example")))
		e.texts.optedOut = true
		sent, err = e.svc.Send(ctx, e.conv, msg)
		require.NoError(t, err, "an opted-out patient's secure chat still takes messages")
		assert.Equal(t, database.ModeSecure, sent.Via, "secure mode keeps every message off SMS")
		assert.Len(t, e.rooms.keptFor, 2)

		require.NoError(t, e.svc.SetMode(ctx, e.conv, database.ModeSMS, database.StaffActor("@kim:clinic.example")))
		_, err = e.svc.Send(ctx, e.conv, msg)
		assert.ErrorIs(t, err, outbox.ErrOptedOut)
	})
}
