package securechat

import (
	"sync"
	"time"
)

// Hub tells open chat pages (Server-Sent Events) that their conversation changed.
// It carries no content: a page reloads what it may see through the service. It also
// keeps who of the staff is typing in each conversation (activity.go), which lives only
// in memory. With several processes on one PostgreSQL database (Service.Share) it passes
// each change on to the others' hubs, and theirs to this one.
type Hub struct {
	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{}
	typists map[string]map[string]*typist // conversation → staff member's key
	// tag names a conversation in the signals between processes (live.go); share sends one.
	tag   func(conv string) string
	share func(tag string)
	// tags maps the tag of each conversation with a subscriber to the conversation.
	tags map[string]string
}

// NewHub builds an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan struct{}]struct{}{}, tags: map[string]string{}}
}

// Subscribe returns a channel that receives a signal after each change of the
// conversation, and a function to stop.
func (h *Hub) Subscribe(loginID, portalID string) (<-chan struct{}, func()) {
	key := loginID + "/" + portalID
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[key] == nil {
		h.subs[key] = map[chan struct{}]struct{}{}
		if h.tag != nil {
			h.tags[h.tag(key)] = key
		}
	}
	h.subs[key][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[key], ch)
		if len(h.subs[key]) == 0 {
			delete(h.subs, key)
			if h.tag != nil {
				delete(h.tags, h.tag(key))
			}
		}
		h.mu.Unlock()
	}
}

// Publish signals every subscriber of the conversation (without blocking), in this
// process and, when shared, in the others.
func (h *Hub) Publish(loginID, portalID string) {
	key := loginID + "/" + portalID
	h.mu.Lock()
	h.signal(key)
	share, tag := h.share, h.tag
	h.mu.Unlock()
	if share != nil {
		share(tag(key))
	}
}

// publishHere signals the subscribers of conv in this process only.
func (h *Hub) publishHere(conv string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signal(conv)
}

// signal wakes the subscribers of one conversation; h.mu is held.
func (h *Hub) signal(key string) {
	for ch := range h.subs[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// published is a change another process made to the conversation tagged tag.
func (h *Hub) published(tag string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if key, ok := h.tags[tag]; ok {
		h.signal(key)
	}
}

// typedElsewhere is a staff member's typing another process heard of (live.go), for a
// conversation with a subscriber here; its pages are signalled when that changed anything.
func (h *Hub) typedElsewhere(tag, key, name string, typing bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if conv, ok := h.tags[tag]; ok && h.setTypingLocked(conv, key, name, typing, now) {
		h.signal(conv)
	}
}

// publishedAll wakes every subscriber: signals from other processes may have been missed.
func (h *Hub) publishedAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key := range h.subs {
		h.signal(key)
	}
}

// setShare connects the hub to the other processes; existing subscribers get their tags.
func (h *Hub) setShare(tag func(conv string) string, share func(tag string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tag, h.share = tag, share
	for key := range h.subs {
		h.tags[tag(key)] = key
	}
}
