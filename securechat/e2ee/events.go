//go:build e2eepatient

package e2ee

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Long-poll timeouts of the events handler: a page asks with timeout= (milliseconds, as
// /sync); none means DefaultPollTimeout, more than MaxPollTimeout is cut to it, under the
// idle timeouts of proxies between the browser and the bridge.
const (
	DefaultPollTimeout = 30 * time.Second
	MaxPollTimeout     = 50 * time.Second
)

var (
	errPollParam = deny(mautrix.MInvalidParam, "poll_param",
		"timeout must be a number of milliseconds.")
	errNotGet = deny(mautrix.MUnrecognized.WithStatus(http.StatusMethodNotAllowed), "method",
		"The patient events endpoint takes GET only.")
)

// EventsHandler is the endpoint the page polls (GET …/e2ee/events?since=…&timeout=…) for what
// the homeserver pushed for its device: the answer is a Batch, shaped for receiveSyncChanges.
// Like the Proxy, one handler serves one patient-web user, sits behind the secure chat's
// session and takes the device from WithDevice; a session naming a device the inbox does not
// serve for that user is 403, so a page only ever reads its own device's queue.
func (in *Inbox) EventsHandler(patient id.UserID) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log := zerolog.Ctx(r.Context()).With().Str("component", "e2ee_events").Logger()
		if r.Method != http.MethodGet {
			rw.Header().Set("Allow", http.MethodGet)
			p := errNotGet
			log.Debug().Str("reason", p.reason).Msg("Patient events refused a request")
			p.write(rw)
			return
		}
		dev := Device{User: patient, ID: deviceFrom(r.Context())}
		if dev.ID == "" || !in.Serves(dev) {
			log.Debug().Str("reason", errNoDevice.reason).Msg("Patient events refused a request")
			errNoDevice.write(rw)
			return
		}
		timeout := DefaultPollTimeout
		if t := r.URL.Query().Get("timeout"); t != "" {
			ms, err := strconv.ParseUint(t, 10, 32)
			if err != nil {
				errPollParam.write(rw)
				return
			}
			timeout = min(time.Duration(ms)*time.Millisecond, MaxPollTimeout)
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		batch, _, err := in.Next(ctx, dev, r.URL.Query().Get("since"))
		if err != nil {
			errNoDevice.write(rw)
			return
		}
		if r.Context().Err() != nil {
			return // the page went away
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(rw)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(batch); err != nil {
			log.Debug().Msg("Patient events could not write the whole batch")
		}
		log.Debug().Int("to_device", len(batch.ToDevice.Events)).Int("device_changes", len(batch.DeviceLists.Changed)).
			Bool("missed", batch.Missed).Msg("Patient events answered a poll")
	})
}
