package appservice_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/database"
)

func TestLookOf(t *testing.T) {
	expires := time.UnixMilli(1_800_000_000_000)
	conv := &database.Conversation{Mode: database.ModeSecure, Assignee: "@kim:clinic.example", Urgent: true}
	look := appservice.LookOf(appservice.LookInput{Conv: conv, RoomName: "🚨 Maria Lopez", PatientLabel: "Patient …4567",
		Through: "(555) 000-1111", ClinicName: "Riverside Clinic", TopicSuffix: " · owner Kim", LinkExpires: expires})
	assert.Equal(t, "🚨 Maria Lopez", look.Name)
	assert.Equal(t, "🔒 secure conversation with Patient …4567 through (555) 000-1111 (Riverside Clinic) · owner Kim", look.Topic)
	assert.Equal(t, &appservice.ConversationState{Mode: database.ModeSecure, LinkExpires: expires.UnixMilli(),
		Assignee: "@kim:clinic.example", Urgent: true}, look.State)

	conv = &database.Conversation{Mode: database.ModeSMS, ClosedAt: time.Now()}
	look = appservice.LookOf(appservice.LookInput{Conv: conv, RoomName: "(555) 123-4567", PatientLabel: "(555) 123-4567", ClinicName: "Riverside Clinic"})
	assert.Equal(t, "SMS conversation with (555) 123-4567 (Riverside Clinic)", look.Topic)
	assert.True(t, look.State.Closed)
	assert.Zero(t, look.State.LinkExpires, "no active link, no expiry")
}

func TestMaskedNumber(t *testing.T) {
	assert.Equal(t, "Patient …4567", appservice.MaskedNumber("+15551234567"))
	assert.Equal(t, "Patient …123", appservice.MaskedNumber("+123"))
}

func TestServerACL(t *testing.T) {
	acl := appservice.ServerACL([]string{"clinic.example", "partner.example"})
	assert.Equal(t, []string{"clinic.example", "partner.example"}, acl.Allow)
	assert.False(t, acl.AllowIPLiterals)
	assert.True(t, appservice.ServerACL([]string{"127.0.0.1"}).AllowIPLiterals, "a test set-up on loopback")
}

func TestLookNowDecidesNameTopicAndLink(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *roomsEnv) {
		e.cfg.SecureChat.LinkLifetime = 72 * time.Hour
		conv, err := e.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550001111", PortalID: "15551234567",
			ClinicPhone: clinicPhone, PatientPhone: "+15551234567", Mode: database.ModeSecure, Urgent: true})
		require.NoError(t, err)

		look, err := e.rooms.LookNow(ctx, appservice.LookInput{Conv: conv, NamePrefix: "🚨 ", Through: "(555) 000-1111", TopicSuffix: " · 🚨 urgent"})
		require.NoError(t, err)
		assert.Equal(t, "🚨 formatted +15551234567", look.Name, "no name yet: the number as staff know it")
		assert.Equal(t, "🔒 secure conversation with formatted +15551234567 through (555) 000-1111 (Riverside Clinic) · 🚨 urgent", look.Topic)
		assert.Zero(t, look.State.LinkExpires, "no active link")

		require.NoError(t, e.db.Conversation.SetPatientName(ctx, conv.PatientPhone, "Maria Lopez"))
		require.NoError(t, e.db.Link.Insert(ctx, &database.SecureLink{TokenHash: "h1", LoginID: conv.LoginID,
			PortalID: conv.PortalID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
		look, err = e.rooms.LookNow(ctx, appservice.LookInput{Conv: conv})
		require.NoError(t, err)
		assert.Equal(t, "Maria Lopez", look.Name)
		assert.InDelta(t, time.Now().Add(72*time.Hour).UnixMilli(), look.State.LinkExpires, float64(time.Minute.Milliseconds()),
			"an upper bound: the newest link's lifetime from now")

		e.cfg.Privacy.MaskRoomNames = true
		look, err = e.rooms.LookNow(ctx, appservice.LookInput{Conv: conv})
		require.NoError(t, err)
		assert.Equal(t, "Patient …4567", look.Name, "names travel in clear to other servers")
		assert.Equal(t, "🔒 secure conversation with Patient …4567 (Riverside Clinic)", look.Topic)
	})
}
