package securechat

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestLateMessageIsAlertedWhenTheQuietPeriodEnds(t *testing.T) {
	p := AlertPolicy{Quiet: 15 * time.Minute, ReminderAfter: 24 * time.Hour}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	conv := &database.Conversation{}

	action, _ := p.OnStaffMessage(conv, t0)
	assert.Equal(t, AlertNow, action, "the first message is alerted at once")
	conv.LastAlertAt = t0

	// The patient reads it; the lab result comes 7 minutes after the alert.
	action, due := p.OnStaffMessage(conv, t0.Add(7*time.Minute))
	assert.Equal(t, AlertLater, action)
	assert.Equal(t, t0.Add(15*time.Minute), due, "held back until the quiet period ends")
	conv.AlertDueAt = due

	assert.Equal(t, AlertNone, p.Due(conv, true, t0.Add(14*time.Minute)), "not before")
	assert.Equal(t, AlertNow, p.Due(conv, true, t0.Add(15*time.Minute)), "alerted when the quiet period ends")
	assert.Equal(t, AlertNone, p.Due(conv, false, t0.Add(15*time.Minute)), "not when the patient read it meanwhile")
}

func TestMessagesStillUnreadGetOneReminder(t *testing.T) {
	p := AlertPolicy{Quiet: 15 * time.Minute, ReminderAfter: 24 * time.Hour}
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	conv := &database.Conversation{LastAlertAt: t0}
	assert.Equal(t, AlertNone, p.Due(conv, true, t0.Add(23*time.Hour)))
	assert.Equal(t, AlertReminder, p.Due(conv, true, t0.Add(24*time.Hour)))
	assert.Equal(t, AlertNone, p.Due(conv, false, t0.Add(24*time.Hour)), "nothing unread: no reminder")
	conv.RemindedAt = t0.Add(24 * time.Hour)
	assert.Equal(t, AlertNone, p.Due(conv, true, t0.Add(48*time.Hour)), "one reminder per alert")
	p.ReminderAfter = 0
	conv.RemindedAt = time.Time{}
	assert.Equal(t, AlertNone, p.Due(conv, true, t0.Add(48*time.Hour)), "reminders can be turned off")
}

func TestTextsUseThePatientsLanguage(t *testing.T) {
	assert.Equal(t, "en", Language(&database.Conversation{}, "en"))
	assert.Equal(t, "es", Language(&database.Conversation{PatientLanguage: "es"}, "en"))
	assert.Equal(t, "en", Language(&database.Conversation{PatientLanguage: "xx"}, "en"), "only languages the pages speak")
	assert.Contains(t, UnreadReminderText("es", "Clínica Norte", "https://x/s/t"), "sin leer")
}

func TestThePatientsPageLanguageIsRememberedForTheirTexts(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "es"))
		f.backend.mu.Lock()
		assert.Contains(t, f.backend.texts[len(f.backend.texts)-1], "su código es", "the code is in the page's language")
		f.backend.mu.Unlock()
		conv, err := f.svc.DB.Conversation.Get(ctx, f.conv.LoginID, f.conv.PortalID)
		require.NoError(t, err)
		assert.Equal(t, "es", conv.PatientLanguage)
		assert.Equal(t, "es", Language(conv, "en"), "alerts from now on are in Spanish")
		assert.Contains(t, AlertText(Language(conv, "en"), "Clínica Norte", "https://x/s/t"), "tiene un mensaje seguro nuevo")
	})
}

func TestCodeTextEndsWithTheOriginBoundLine(t *testing.T) {
	assert.Equal(t, "Riverside Clinic: your code is 042917. It expires in 10 minutes. Do not share it with anyone.\n\n@chat.riverside.example #042917",
		CodeText("en", "Riverside Clinic", "042917", "chat.riverside.example", 10*time.Minute))
	assert.Equal(t, "Riverside Clinic: su código es 042917. Vence en 10 minutos. No lo comparta con nadie.\n\n@chat.riverside.example #042917",
		CodeText("es", "Riverside Clinic", "042917", "chat.riverside.example", 10*time.Minute))
	assert.Equal(t, "Riverside Clinic: your code is 042917. It expires in 10 minutes. Do not share it with anyone.",
		CodeText("en", "Riverside Clinic", "042917", "", 10*time.Minute), "no host, no line")
	for base, host := range map[string]string{"https://chat.riverside.example": "chat.riverside.example",
		"https://chat.riverside.example:8443/": "chat.riverside.example", "": ""} {
		assert.Equal(t, host, codeHost(base), base)
	}
}

func TestChatWordsCarryNoLink(t *testing.T) {
	assert.Equal(t, "this secure chat", ChatWords("en"))
	assert.Equal(t, "este chat seguro", ChatWords("es"))
	assert.NotContains(t, ChatWords("en"), "http")
}
