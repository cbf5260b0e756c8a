package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

func TestMatchEmergency(t *testing.T) {
	phrases := []string{"chest pain", "can't breathe", "stroke", "suicide", "dolor de pecho", "no puedo respirar"}
	tests := []struct {
		body, want string
	}{
		{"I have CHEST PAIN since this morning", "chest pain"},
		{"chest   pain.", "chest pain"},
		{"I can’t breathe", "can't breathe"},
		{"i cant breathe well", "can't breathe"},
		{"Tengo dolor de pécho", "dolor de pecho"},
		{"NO PUEDO RESPIRAR!!", "no puedo respirar"},
		{"I think my dad had a stroke?", "stroke"},
		{"heatstroke last summer, all fine now", ""},
		{"my chest is fine, the pain is in my knee", ""},
		{"can I book a checkup", ""},
		{"", ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, matchEmergency(phrases, tt.body), tt.body)
	}
}

func TestClaimEmergencyReply(t *testing.T) {
	conv := &database.Conversation{LoginID: "15550001111", PortalID: "15559990000"}
	now := time.Date(2026, 3, 4, 22, 0, 0, 0, time.UTC)
	ok, release := claimEmergencyReply(conv, now)
	assert.True(t, ok)
	assert.NotNil(t, release)
	ok, _ = claimEmergencyReply(conv, now.Add(9*time.Minute))
	assert.False(t, ok, "one reply per 10 minutes")
	ok, _ = claimEmergencyReply(&database.Conversation{LoginID: "15550001111", PortalID: "15559990001"}, now.Add(time.Minute))
	assert.True(t, ok, "other conversations are apart")
	ok, release = claimEmergencyReply(conv, now.Add(10*time.Minute))
	assert.True(t, ok, "after 10 minutes, again")
	release()
	ok, _ = claimEmergencyReply(conv, now.Add(11*time.Minute))
	assert.True(t, ok, "a released claim (the text failed) is taken again")
}

func TestFillTemplate(t *testing.T) {
	tests := []struct {
		text, name, want string
	}{
		{"Hi {patient_name}, your appointment at {clinic_name} is confirmed.", "Maria Lopez",
			"Hi Maria Lopez, your appointment at Example Clinic is confirmed."},
		{"Hi {patient_name}, your appointment at {clinic_name} is confirmed.", "",
			"Hi, your appointment at Example Clinic is confirmed."},
		{"{patient_name}, please call us back.", "", "Please call us back."},
		{"Thank you {patient_name}!", "", "Thank you!"},
		{"Read it here: {link}", "", "Read it here: https://chat.example.org/s/abc"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, fillTemplate(tt.text, tt.name, "Example Clinic", "https://chat.example.org/s/abc"))
	}
}

func TestMentionNotice(t *testing.T) {
	content := mentionNotice("🚨 Possible emergency.", []string{"@oncall:clinic.example", "@dr.lee:clinic.example"})
	assert.Equal(t, event.MsgNotice, content.MsgType)
	assert.Equal(t, []id.UserID{"@oncall:clinic.example", "@dr.lee:clinic.example"}, content.Mentions.UserIDs)
	assert.Equal(t, "🚨 Possible emergency. On call: @oncall:clinic.example @dr.lee:clinic.example", content.Body)
	assert.Contains(t, content.FormattedBody, `<a href="https://matrix.to/#/@oncall:clinic.example">@oncall:clinic.example</a>`)

	plain := mentionNotice("After hours.", nil)
	assert.Equal(t, "After hours.", plain.Body)
	assert.Empty(t, plain.Mentions.UserIDs, "nobody on call: nobody mentioned")
}
