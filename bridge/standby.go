package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/exhttp"

	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// Active and standby on PostgreSQL: any number of carebridge processes share one
// database; the one holding the lease (database.Lease) runs the appservice, the queues and
// the loops. The others wait before starting anything that talks to Matrix or Twilio:
// they answer the liveness check, answer readiness with 503 (so a load balancer or the
// homeserver's proxy sends traffic to the active one), keep storing the Twilio texts that
// reach them (the active one's queue delivers them from the database), and take over
// within about a second of the lease coming free: at once when the active process
// stops, and when it dies, as soon as the database sees its connection end.

// ActivePath answers 200 from the moment this process holds the lease (at once on
// SQLite), while it starts as well, and 503 on a standby. A load balancer in front of
// several processes routes by it, not by readiness: on Synapse a starting process must
// be reached by the homeserver's ping before it can become ready.
const ActivePath = "/_carebridge/active"

const (
	// leaseRetry is how often a standby asks for the lease.
	leaseRetry = time.Second
	// leaseCheck is how often the active process confirms it still holds the lease.
	leaseCheck = 2 * time.Second
)

// WaitForLease returns once this process may run: at once on SQLite (one process) and
// when the lease is free; otherwise it serves as a standby on listenAddr (the
// appservice's host:port) until the lease comes free. onLost is called if the lease is
// lost later (the database connection ended): the process must stop, since another may
// be active by then.
func (c *Connector) WaitForLease(ctx context.Context, listenAddr string, onLost func(error)) error {
	if !c.DB.LeaseSupported() {
		c.active.Store(true)
		return nil
	}
	log := c.Bridge.Log.With().Str("component", "lease").Logger()
	ctx = log.WithContext(ctx)
	var standby *http.Server
	defer func() {
		if standby != nil {
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = standby.Shutdown(shutdownCtx)
		}
	}()
	for {
		lease, ok, err := c.DB.TryLease(ctx)
		if err != nil {
			log.Err(err).Msg("Failed to ask the database for the active lease; trying again")
		} else if ok {
			log.Info().Bool("was_standby", standby != nil).Msg("Holding the active lease: starting")
			// What was stored before now may have been in the previous active process's hands.
			c.startedAt = time.Now().Truncate(time.Millisecond)
			c.active.Store(true)
			go lease.Keep(ctx, leaseCheck, onLost)
			return nil
		}
		if standby == nil && err == nil {
			log.Info().Str("listen", listenAddr).Msg("Another carebridge process is active on this database: " +
				"waiting as a standby (readiness 503, Twilio texts stored for the active one)")
			if standby, err = c.serveStandby(ctx, listenAddr); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leaseRetry):
		}
	}
}

// serveStandby answers on the appservice's address while this process waits.
func (c *Connector) serveStandby(ctx context.Context, listenAddr string) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/mau/live", func(w http.ResponseWriter, r *http.Request) {
		exhttp.WriteJSONResponse(w, http.StatusOK, map[string]any{"ok": true, "standby": true})
	})
	mux.HandleFunc("POST "+inboundPathPrefix+"{login_id}/inbound", c.handleStandbyInbound)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Readiness, the homeserver's transactions, status callbacks (the catch-up of the
		// active process fetches statuses that never arrived), the patient pages.
		w.Header().Set("Retry-After", "1")
		exhttp.WriteJSONResponse(w, http.StatusServiceUnavailable, map[string]any{
			"errcode": "M_UNKNOWN", "error": "standby: another carebridge process is active", "standby": true})
	})
	listener, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			zerolog.Ctx(ctx).Err(err).Msg("Standby listener stopped")
		}
	}()
	return srv, nil
}

// handleActive answers whether this process is the active one (holds the lease).
func (c *Connector) handleActive(w http.ResponseWriter, r *http.Request) {
	if !c.active.Load() {
		w.Header().Set("Retry-After", "1")
		exhttp.WriteJSONResponse(w, http.StatusServiceUnavailable, map[string]any{"active": false})
		return
	}
	exhttp.WriteJSONResponse(w, http.StatusOK, map[string]any{"active": true, "ready": c.started.Load()})
}

// handleStandbyInbound stores a signed inbound text for the active process, whose queue
// delivers it (Twilio does not retry an answered text, so refusing it would lose it).
func (c *Connector) handleStandbyInbound(w http.ResponseWriter, r *http.Request) {
	log := c.webhookLog(r, "twilio inbound webhook (standby)")
	login := c.verifyWebhook(w, r, log)
	if login == nil {
		return
	}
	status, err := c.storeInbound(r.Context(), login, r.PostForm, time.Now(), metrics.InboundStored)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(sms.EmptyTwiML))
}
