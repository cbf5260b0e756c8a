package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestEmergencyPhrasesMatchAsWholeWordsWhateverTheCaseAccentsOrApostrophes(t *testing.T) {
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
		assert.Equal(t, tt.want, MatchEmergency(phrases, tt.body), tt.body)
	}
	assert.Empty(t, MatchEmergency([]string{"", "!!"}, "chest pain"), "an empty phrase matches nothing")
}

func TestEmergencyReplyOncePerTenMinutesPerConversation(t *testing.T) {
	var replies EmergencyReplies
	const maria, john = "15550001111/15551234567", "15550001111/15557654321"
	now := time.Date(2026, 3, 4, 22, 0, 0, 0, time.UTC)
	ok, release := replies.Claim(maria, now)
	assert.True(t, ok)
	assert.NotNil(t, release)
	ok, _ = replies.Claim(maria, now.Add(9*time.Minute))
	assert.False(t, ok, "one reply per 10 minutes")
	ok, _ = replies.Claim(john, now.Add(time.Minute))
	assert.True(t, ok, "other conversations are apart")
	ok, release = replies.Claim(maria, now.Add(10*time.Minute))
	assert.True(t, ok, "after 10 minutes, again")
	release()
	ok, _ = replies.Claim(maria, now.Add(11*time.Minute))
	assert.True(t, ok, "a released claim (the text failed) is taken again")
}
