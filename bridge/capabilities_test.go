package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/database"
)

func TestEventConvsHandsAConversationToItsOwnEventOnce(t *testing.T) {
	var m eventConvs
	first, second := &event.Event{ID: "$first"}, &event.Event{ID: "$second"}
	conv := &database.Conversation{LoginID: "15550001111", PortalID: "15551234567", Mode: database.ModeSecure}
	m.put(first, conv)
	m.put(second, nil) // read: the room has no conversation

	_, ok := m.take(&event.Event{ID: "$first"})
	assert.False(t, ok, "only the same event takes it, not one that looks alike")
	got, ok := m.take(first)
	assert.True(t, ok)
	assert.Same(t, conv, got)
	_, ok = m.take(first)
	assert.False(t, ok, "taken once: a second handling reads the conversation")
	got, ok = m.take(second)
	assert.True(t, ok, "no conversation is an answer too")
	assert.Nil(t, got)
	_, ok = m.take(nil)
	assert.False(t, ok)

	m.put(first, conv)
	for i := range eventConvSlots {
		m.put(&event.Event{ID: "$other"}, &database.Conversation{PortalID: string(rune('a' + i))})
	}
	_, ok = m.take(first)
	assert.False(t, ok, "overwritten by later events: read again")
}
