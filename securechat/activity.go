package securechat

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
)

// What the clinic is doing in a conversation, for the patient's chat page: "Seen by the
// clinic" once staff read the patient's messages, and "… is typing" while one writes.
// The page learns of a change through the hub's signal and fetches it with the messages;
// it shows only the name the staff member chose for themselves (their display name).

// typingTimeout is how long a "typing" lasts without being said again. Matrix ends typing
// itself (a new typing event without the member); this bounds a stop that never comes.
const typingTimeout = 30 * time.Second

type typist struct {
	name  string
	until time.Time
}

// StaffRead marks the patient's messages staff have now seen: those up to the secure
// message upToID (0 when the read event is not one), or stored at or before upTo. The
// open pages are signalled when it changed anything.
func (s *Service) StaffRead(ctx context.Context, conv *database.Conversation, upToID int64, upTo time.Time) error {
	n, err := s.DB.Secure.MarkSeenByClinic(ctx, conv.LoginID, conv.PortalID, upToID, upTo, s.now())
	if err != nil {
		return err
	}
	if n > 0 {
		zerolog.Ctx(ctx).Debug().Int64("seen", n).Msg("Staff saw the patient's secure messages")
		s.Hub.Publish(conv.LoginID, conv.PortalID)
	}
	return nil
}

// StaffTyping records that a staff member (key: their Matrix ID, never shown) started or
// stopped typing in the conversation, under the name the patient sees, and signals the
// open pages when that changed what they show.
func (s *Service) StaffTyping(conv *database.Conversation, key, name string, typing bool) {
	if s.Hub.setTyping(conv.LoginID, conv.PortalID, key, name, typing, s.now()) {
		s.Hub.publishHere(conv.LoginID + "/" + conv.PortalID)
	}
	// Other processes' pages (web replicas) hear of it, renewals included (live.go).
	s.shareTyping(conv, key, name, typing)
}

// Typists returns the keys of the staff members now typing in the conversation.
func (s *Service) Typists(conv *database.Conversation) []string {
	keys, _, _ := s.Hub.typing(conv.LoginID, conv.PortalID, s.now())
	return keys
}

// typingText says who is typing, in the page's language ("" for no one).
func typingText(lang string, names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return translate(lang, "chat.typing_one", names[0])
	}
	last := len(names) - 1
	return translate(lang, "chat.typing_many", translate(lang, "chat.and", strings.Join(names[:last], ", "), names[last]))
}

// activity is what the page shows of the clinic's activity.
type activity struct {
	// Seen is the newest of the patient's messages the clinic has seen (0: none).
	Seen int64 `json:"seen"`
	// Typing says who of the staff is typing now ("" for no one).
	Typing string `json:"typing"`
	// TypingMS is when the page stops showing them unless told again (ms from now).
	TypingMS int64 `json:"typing_ms,omitempty"`
}

func (s *Service) activity(ctx context.Context, conv *database.Conversation, lang string) (activity, error) {
	seen, err := s.DB.Secure.SeenByClinic(ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		return activity{}, err
	}
	now := s.now()
	_, names, until := s.Hub.typing(conv.LoginID, conv.PortalID, now)
	out := activity{Seen: seen, Typing: typingText(lang, names)}
	if len(names) > 0 {
		out.TypingMS = until.Sub(now).Milliseconds()
	}
	return out, nil
}

// setTyping reports whether the conversation's typists changed (a renewal does not).
func (h *Hub) setTyping(loginID, portalID, key, name string, typing bool, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.setTypingLocked(loginID+"/"+portalID, key, name, typing, now)
}

// setTypingLocked is setTyping for the conversation conv ("login/portal"); h.mu is held.
func (h *Hub) setTypingLocked(conv, key, name string, typing bool, now time.Time) bool {
	if h.typists == nil {
		h.typists = map[string]map[string]*typist{}
	}
	current, ok := h.typists[conv][key]
	live := ok && now.Before(current.until)
	if !typing {
		delete(h.typists[conv], key)
		if len(h.typists[conv]) == 0 {
			delete(h.typists, conv)
		}
		return live
	}
	if h.typists[conv] == nil {
		h.typists[conv] = map[string]*typist{}
	}
	if live && current.name == name {
		current.until = now.Add(typingTimeout)
		return false
	}
	h.typists[conv][key] = &typist{name: name, until: now.Add(typingTimeout)}
	return true
}

// typing returns who is typing in the conversation now (keys, and names without repeats)
// and when the first of them lapses; lapsed entries are dropped.
func (h *Hub) typing(loginID, portalID string, now time.Time) (keys, names []string, until time.Time) {
	conv := loginID + "/" + portalID
	h.mu.Lock()
	defer h.mu.Unlock()
	type entry struct {
		key string
		*typist
	}
	var live []entry
	for key, t := range h.typists[conv] {
		if !now.Before(t.until) {
			delete(h.typists[conv], key)
			continue
		}
		live = append(live, entry{key, t})
	}
	if len(h.typists[conv]) == 0 {
		delete(h.typists, conv)
	}
	slices.SortFunc(live, func(a, b entry) int { return a.until.Compare(b.until) })
	for i, e := range live {
		if i == 0 {
			until = e.until
		}
		keys = append(keys, e.key)
		if !slices.Contains(names, e.name) {
			names = append(names, e.name)
		}
	}
	return keys, names, until
}
