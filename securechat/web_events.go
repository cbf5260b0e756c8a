package securechat

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// handleEvents is the chat page's event stream (Server-Sent Events). An "update" event
// carries no content: the page then fetches what it may see. The session is checked at
// each signal and keepalive without counting as activity, and an ended session gets an
// "ended" event, after which the page goes to the signed-out page.
func (w *Web) handleEvents(rw http.ResponseWriter, r *http.Request) {
	hdr := rw.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(rw)
	send := func(event string) bool {
		if _, err := io.WriteString(rw, event); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sess, err := w.lookupSession(r, false)
	if err != nil {
		if !errors.Is(err, ErrSessionEnded) {
			logOf(r).Err(err).Msg("Failed to check a secure chat session")
			http.Error(rw, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		send("event: ended\ndata: ended\n\n")
		return
	}
	signals, stop := w.svc.Hub.Subscribe(sess.Conversation.LoginID, sess.Conversation.PortalID)
	defer stop()
	// The bridge's server may have a write timeout; a stream lives longer.
	_ = rc.SetWriteDeadline(time.Time{})
	if !send("retry: 5000\n: open\n\n") {
		return
	}
	keepalive := time.NewTicker(w.keepalive)
	defer keepalive.Stop()
	for {
		var event string
		select {
		case <-r.Context().Done():
			return
		case <-signals:
			event = "event: update\ndata: update\n\n"
		case <-keepalive.C:
			event = ": keepalive\n\n"
		}
		if _, err = w.svc.CheckSession(r.Context(), w.sessionToken(r)); errors.Is(err, ErrSessionEnded) {
			send("event: ended\ndata: ended\n\n")
			return
		} else if err != nil {
			logOf(r).Err(err).Msg("Failed to check a secure chat session")
			return
		}
		if !send(event) {
			return
		}
	}
}
