package securechat

import "sync"

// Hub tells open chat pages (Server-Sent Events) that their conversation changed.
// It carries no content: a page reloads what it may see through the service. It also
// keeps who of the staff is typing in each conversation (activity.go), which lives only
// in memory.
type Hub struct {
	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{}
	typists map[string]map[string]*typist // conversation → staff member's key
}

// NewHub builds an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[string]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives a signal after each change of the
// conversation, and a function to stop.
func (h *Hub) Subscribe(loginID, portalID string) (<-chan struct{}, func()) {
	key := loginID + "/" + portalID
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[key] == nil {
		h.subs[key] = map[chan struct{}]struct{}{}
	}
	h.subs[key][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[key], ch)
		if len(h.subs[key]) == 0 {
			delete(h.subs, key)
		}
		h.mu.Unlock()
	}
}

// Publish signals every subscriber of the conversation (without blocking).
func (h *Hub) Publish(loginID, portalID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[loginID+"/"+portalID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
