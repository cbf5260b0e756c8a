package bridge

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
)

// bridgev2's provisioning API answers create_dm with 201 Created when it made the chat's
// room and 200 when the chat existed. carebridge opens the conversation, room included,
// inside ResolveIdentifier (the room must be set up for staff before anyone writes), so
// bridgev2 always saw a room and answered 200. createdDMStatus restores the convention:
// resolvePhone marks the request when it opened a new conversation, and the answer's
// 200 becomes 201.

const createDMPath = "/_matrix/provision/v3/create_dm/"

type createdDMKey struct{}

// markCreatedDM records, for a create_dm request, that this request opened the conversation.
func markCreatedDM(ctx context.Context) {
	if flag, ok := ctx.Value(createdDMKey{}).(*atomic.Bool); ok {
		flag.Store(true)
	}
}

func createdDMStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, createDMPath) {
			next.ServeHTTP(w, r)
			return
		}
		created := &atomic.Bool{}
		next.ServeHTTP(&createdDMWriter{ResponseWriter: w, created: created},
			r.WithContext(context.WithValue(r.Context(), createdDMKey{}, created)))
	})
}

type createdDMWriter struct {
	http.ResponseWriter
	created *atomic.Bool
}

func (w *createdDMWriter) WriteHeader(status int) {
	if status == http.StatusOK && w.created.Load() {
		status = http.StatusCreated
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *createdDMWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
