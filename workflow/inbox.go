package workflow

import (
	"fmt"
	"html"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// The inbox: which conversations a staff member works through and where each sorts. The
// inbox itself is ordered by the database (unassigned first, then urgent, then waiting
// longest: database.ConversationQuery.Inbox); team spaces sort urgent, open, closed
// (appservice.SpaceOrder).

const (
	// InboxLimit is how many conversations `inbox` lists before "+N more".
	InboxLimit = 50
	// UrgentNamePrefix marks an urgent conversation's room name.
	UrgentNamePrefix = "🚨 "
	// MentionInterval keeps the assignee's mentions quiet while a patient texts in a burst.
	MentionInterval = time.Minute
)

// InboxNumbers are the clinic numbers whose conversations a staff member's inbox lists
// (nil: every number). Members of teams see their teams' numbers; staff invited to every
// conversation (invitedToAll), and everyone when no team names them, see all (bridge
// permissions already decide who may use commands).
func InboxNumbers(teams []config.TeamConfig, user string, invitedToAll bool) []string {
	if invitedToAll {
		return nil
	}
	var numbers []string
	member := false
	for _, team := range teams {
		if !slices.Contains(team.Members, user) {
			continue
		}
		if len(team.Numbers) == 0 {
			return nil
		}
		member = true
		numbers = append(numbers, team.Numbers...)
	}
	if !member {
		return nil
	}
	return numbers
}

// InboxEntry is what the inbox says of one conversation: urgency, the patient (name or
// number), its owner ("" when unassigned) and how long the patient has waited at now.
func InboxEntry(conv *database.Conversation, patient, owner string, now time.Time) []string {
	ownerText := "unassigned"
	if conv.Assignee != "" {
		ownerText = "assigned to " + owner
	}
	wait := "not waiting"
	if !conv.WaitingSince.IsZero() {
		wait = "waiting " + FormatWait(now.Sub(conv.WaitingSince))
	}
	parts := []string{patient, ownerText, wait}
	if conv.Urgent {
		parts = append([]string{"🚨 urgent"}, parts...)
	}
	return parts
}

// InboxLine is one conversation as the inbox lists it: what InboxEntry says of it, and a
// link to its room ("" when it has none).
type InboxLine struct {
	Parts []string
	Link  string
}

// FormatInbox is the inbox as a notice, in plain text and HTML: total open conversations,
// of which lines are the first (at most InboxLimit), the rest counted as "+N more".
func FormatInbox(total int, lines []InboxLine) (text, rich string) {
	var t, h strings.Builder
	fmt.Fprintf(&t, "Open conversations (%d):\n", total)
	fmt.Fprintf(&h, "<p>Open conversations (%d):</p><ol>", total)
	for i, line := range lines {
		escaped := make([]string, len(line.Parts))
		for j, p := range line.Parts {
			escaped[j] = html.EscapeString(p)
		}
		lineText, lineHTML := strings.Join(line.Parts, " · "), strings.Join(escaped, " · ")
		if line.Link != "" {
			lineText += " · " + line.Link
			lineHTML += fmt.Sprintf(` · <a href="%s">open</a>`, html.EscapeString(line.Link))
		}
		fmt.Fprintf(&t, "%d. %s\n", i+1, lineText)
		h.WriteString("<li>" + lineHTML + "</li>")
	}
	h.WriteString("</ol>")
	if more := total - len(lines); more > 0 {
		fmt.Fprintf(&t, "+%d more\n", more)
		fmt.Fprintf(&h, "<p>+%d more</p>", more)
	}
	return strings.TrimSuffix(t.String(), "\n"), h.String()
}

// TopicSuffix is what the room topic adds to the mode: the owner (shown as owner), urgency,
// closed.
func TopicSuffix(conv *database.Conversation, owner string) string {
	var topic string
	if conv.Assignee != "" {
		topic += " · assigned to " + owner
	}
	if conv.Urgent {
		topic += " · 🚨 urgent"
	}
	if !conv.ClosedAt.IsZero() {
		topic += " · closed"
	}
	return topic
}

// RoomName is a conversation room's name: the patient's name or number, marked while urgent.
func RoomName(patient string, urgent bool) string {
	if urgent {
		return UrgentNamePrefix + patient
	}
	return patient
}

// Mentions holds when each conversation's assignee was last mentioned, so that a burst of
// patient texts mentions them once per MentionInterval.
type Mentions struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// Due says whether conversation key's assignee is mentioned at now, and if so records it.
func (m *Mentions) Due(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]time.Time{}
	}
	last, seen := m.last[key]
	if seen && now.Sub(last) < MentionInterval && now.After(last) {
		return false
	}
	m.last[key] = now
	return true
}
