package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

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
