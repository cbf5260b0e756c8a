package integration

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/progver"
	"golang.org/x/time/rate"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// Paths the API is served under.
const (
	RESTPrefix = "/_carebridge/api/v1"
	FHIRPrefix = "/_carebridge/fhir"
)

// maxRequestBody bounds a request: messages are text, far below it.
const maxRequestBody = 256 << 10

// Sealer encrypts what the API keeps that may hold PHI (answers kept for Idempotency-Key,
// FHIR resources, event payloads) with the bridge's keyring.
type Sealer interface {
	Seal(plaintext, additional []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, additional []byte) ([]byte, error)
}

// Options are what a Server needs.
type Options struct {
	DB           *database.Database
	Integrations []config.IntegrationConfig
	Keys         Sealer
	Backend      Backend
	// Software is the binary's version, which the FHIR CapabilityStatement names.
	Software progver.ProgramVersion
	Log      zerolog.Logger
	// EventClient delivers events; nil: a client with a 10 s timeout that follows no redirect.
	EventClient *http.Client
	// Now is the clock of the limits on refused calls; nil: time.Now.
	Now func() time.Time
}

// Server serves the integration API and delivers its events.
type Server struct {
	opts     Options
	db       *database.Database
	backend  Backend
	log      zerolog.Logger
	tokens   []tokenEntry
	limiters map[string]*rate.Limiter
	events   *eventDelivery
	refused  *refusals
	// stopRefused ends the refusals' flush loop; refusedDone closes when it has flushed.
	stopRefused context.CancelFunc
	refusedDone chan struct{}
	metadata    []byte // the CapabilityStatement, encoded
}

type tokenEntry struct {
	hash  [32]byte
	integ *config.IntegrationConfig
}

// NewServer prepares the API for the configured integrations.
func NewServer(opts Options) *Server {
	s := &Server{opts: opts, db: opts.DB, backend: opts.Backend, log: opts.Log, limiters: map[string]*rate.Limiter{}}
	for i := range opts.Integrations {
		ic := &opts.Integrations[i]
		var e tokenEntry
		raw, _ := hex.DecodeString(ic.TokenSHA256) // validated with the config
		copy(e.hash[:], raw)
		e.integ = ic
		s.tokens = append(s.tokens, e)
		s.limiters[ic.Name] = rate.NewLimiter(rate.Limit(float64(ic.RateLimit.PerMinute)/60), ic.RateLimit.Burst)
	}
	s.events = newEventDelivery(s)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s.refused = newRefusals(now, func(ctx context.Context, e *database.AuditEntry) error {
		err := s.db.Audited(ctx, e, nil)
		if err != nil {
			s.log.Err(err).Msg("Failed to audit refused integration API calls")
		}
		return err
	})
	s.metadata = mustJSON(newCapabilityStatement(opts.Software, time.Now()))
	return s
}

// Register mounts the API's routes.
func (s *Server) Register(mux *http.ServeMux) {
	s.route(mux, "POST "+RESTPrefix+"/conversations", config.ScopeConversationsWrite, s.postConversation)
	s.route(mux, "GET "+RESTPrefix+"/conversations/{id}", config.ScopeConversationsRead, s.getConversation)
	s.route(mux, "POST "+RESTPrefix+"/conversations/{id}/messages", config.ScopeMessagesWrite, s.postMessage)
	s.route(mux, "GET "+RESTPrefix+"/conversations/{id}/messages/{message_id}", config.ScopeConversationsRead, s.getMessage)
	s.route(mux, "POST "+FHIRPrefix+"/Communication", config.ScopeMessagesWrite, s.postCommunication)
	s.route(mux, "GET "+FHIRPrefix+"/Communication/{id}", config.ScopeConversationsRead, s.getCommunication)
	mux.HandleFunc("GET "+RESTPrefix+"/openapi.json", s.serveOpenAPI)
	mux.HandleFunc("GET "+FHIRPrefix+"/metadata", s.serveMetadata)
	mux.HandleFunc(RESTPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r, RESTPrefix+"/"); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, apiError(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not served here; this endpoint takes %s", r.Method, allow))
			return
		}
		writeError(w, apiError(http.StatusNotFound, "not_found", "no such endpoint: see %s/openapi.json", RESTPrefix))
	})
	mux.HandleFunc(FHIRPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r, FHIRPrefix+"/"); allow != "" {
			w.Header().Set("Allow", allow)
			writeOutcome(w, apiError(http.StatusMethodNotAllowed, "not-supported", "%s is not supported here; this endpoint takes %s: see %s/metadata", r.Method, allow, FHIRPrefix))
			return
		}
		writeOutcome(w, apiError(http.StatusNotFound, "not-supported", "carebridge supports only Communication (POST, and GET by id): see %s/metadata", FHIRPrefix))
	})
}

// allowedMethods lists the methods the API serves at r's path ("GET, HEAD, POST"), or
// nothing when it serves none there: a request that reached the fallback with another
// method is answered 405 with Allow (RFC 9110), not 404.
func allowedMethods(mux *http.ServeMux, r *http.Request, fallback string) string {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := mux.Handler(probe); pattern != fallback {
			allow = append(allow, method)
			if method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	return strings.Join(allow, ", ")
}

// Start delivers events, and audits refused calls, until ctx ends.
func (s *Server) Start(ctx context.Context) {
	s.events.start(ctx)
	ctx, s.stopRefused = context.WithCancel(ctx)
	s.refusedDone = make(chan struct{})
	go func() {
		defer close(s.refusedDone)
		s.refused.run(ctx)
	}()
}

// Stop ends event delivery, audits the refused calls not audited yet, and waits for both.
func (s *Server) Stop() {
	s.events.stop()
	if s.stopRefused != nil {
		s.stopRefused()
		<-s.refusedDone
	} else {
		s.refused.flush(context.Background(), true)
	}
}

// call is one API request on its way through: who made it and what it touched, for the
// audit row written when it ends.
type call struct {
	integ    *config.IntegrationConfig
	loginID  string
	portalID string
	fhir     bool
	// counted: a refused call that is audited in aggregate (refusals.go).
	counted bool
}

// Actor names the integration in the audit log.
func (c *call) Actor() database.AuditActor { return database.IntegrationActor(c.integ.Name) }

func (c *call) touch(conv *database.Conversation) {
	if conv != nil {
		c.loginID, c.portalID = conv.LoginID, conv.PortalID
	}
}

type handler func(ctx context.Context, c *call, r *http.Request, body []byte) (status int, resp any, err error)

// route wraps a handler with what every call goes through, in this order: the token
// (without a known one, the limit of the client's address), its scope, its rate limit,
// the body's size, the Idempotency-Key (POST), then the audit row when it ends.
func (s *Server) route(mux *http.ServeMux, pattern, scope string, h handler) {
	fhir := strings.Contains(pattern, FHIRPrefix)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &call{fhir: fhir}
		rec := &recorder{ResponseWriter: w}
		defer func() { s.auditCall(r, c, rec.status) }()
		fail := func(e *Error) {
			if fhir {
				writeOutcome(rec, e)
			} else {
				writeError(rec, e)
			}
		}
		c.integ = s.authenticate(r)
		if c.integ == nil {
			missing := r.Header.Get("Authorization") == ""
			answer := "401 invalid_token"
			if missing {
				answer = "401 missing_token"
			}
			wait, limited, first := s.refused.refuse(r.Context(), clientAddress(r), answer)
			c.counted = !first
			if limited {
				seconds := max(int(math.Ceil(wait.Seconds())), 1)
				rec.Header().Set("Retry-After", fmt.Sprint(seconds))
				fail(apiError(http.StatusTooManyRequests, "rate_limited", "too many calls without a valid token from this address; retry in %d s", seconds))
				return
			}
			rec.Header().Set("WWW-Authenticate", `Bearer realm="carebridge"`)
			if missing {
				fail(apiError(http.StatusUnauthorized, "missing_token", "send the integration's token as Authorization: Bearer <token>"))
			} else {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="carebridge", error="invalid_token"`)
				fail(apiError(http.StatusUnauthorized, "invalid_token", "the bearer token is not one this bridge knows"))
			}
			return
		}
		if !c.integ.HasScope(scope) {
			c.counted = !s.refused.refuseKnown(r.Context(), c.Actor(), clientAddress(r), "403 insufficient_scope")
			rec.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="carebridge", error="insufficient_scope", scope=%q`, scope))
			fail(apiError(http.StatusForbidden, "insufficient_scope", "the token of integration %s lacks the scope %s", c.integ.Name, scope))
			return
		}
		if wait, ok := s.allow(c.integ.Name); !ok {
			c.counted = !s.refused.refuseKnown(r.Context(), c.Actor(), clientAddress(r), "429 rate_limited")
			seconds := int(math.Ceil(wait.Seconds()))
			rec.Header().Set("Retry-After", fmt.Sprint(seconds))
			fail(apiError(http.StatusTooManyRequests, "rate_limited", "integration %s is over its rate limit (%d a minute, bursts of %d); retry in %d s",
				c.integ.Name, c.integ.RateLimit.PerMinute, c.integ.RateLimit.Burst, seconds))
			return
		}
		var body []byte
		if r.Method == http.MethodPost {
			var err error
			if body, err = readBody(rec, r); err != nil {
				fail(asError(err))
				return
			}
		}
		run := func(ctx context.Context) (int, any, error) {
			ctx = s.log.With().Str("integration", c.integ.Name).Str("route", r.Pattern).Logger().WithContext(ctx)
			return h(ctx, c, r, body)
		}
		if r.Method == http.MethodPost {
			s.idempotent(rec, r, c, body, run, fail)
			return
		}
		status, resp, err := run(r.Context())
		if err != nil {
			fail(asError(err))
			return
		}
		writeJSON(rec, status, resp, fhir)
	})
}

// authenticate finds the integration whose token the request carries. Every configured
// hash is compared, in constant time, whatever matches.
func (s *Server) authenticate(r *http.Request) *config.IntegrationConfig {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var found *config.IntegrationConfig
	for _, e := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found = e.integ
		}
	}
	return found
}

// allow takes one request from the integration's bucket, or says how long to wait.
func (s *Server) allow(name string) (time.Duration, bool) {
	res := s.limiters[name].Reserve()
	if delay := res.Delay(); delay > 0 {
		res.Cancel()
		return delay, false
	}
	return 0, true
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, apiError(http.StatusRequestEntityTooLarge, "too_large", "the request body is over %d KiB", maxRequestBody>>10)
	} else if err != nil {
		return nil, apiError(http.StatusBadRequest, "unreadable_body", "the request body could not be read")
	}
	return body, nil
}

// auditCall writes the call's audit row: who, which endpoint, the answer; never a body.
// Most calls refused before they ran (a token unknown or without the scope, an integration
// over its limit) are counted instead (refusals.go).
func (s *Server) auditCall(r *http.Request, c *call, status int) {
	if c.counted {
		return
	}
	actor := database.UnauthenticatedActor
	if c.integ != nil {
		actor = c.Actor()
	}
	outcome := database.OutcomeOK
	switch {
	case status >= 500:
		outcome = database.OutcomeFailed
	case status >= 400:
		outcome = database.OutcomeRefused
	}
	pattern := r.Pattern
	if pattern == "" {
		pattern = r.Method + " " + r.URL.Path
	}
	entry := &database.AuditEntry{Actor: actor, LoginID: c.loginID, PortalID: c.portalID, Event: database.EventAPICall,
		Outcome: outcome, Detail: fmt.Sprintf("%s %d", pattern, status)}
	if err := s.db.Audited(context.WithoutCancel(r.Context()), entry, nil); err != nil {
		s.log.Err(err).Str("route", pattern).Msg("Failed to audit an integration API call")
	}
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any, fhir bool) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":{"code":"internal_error","message":"the answer could not be encoded"}}`)
	}
	writeRaw(w, status, data, fhir)
}

func writeRaw(w http.ResponseWriter, status int, data []byte, fhir bool) {
	if status == http.StatusCreated {
		if location := locationOf(data); location != "" {
			w.Header().Set("Location", location)
		}
	}
	if fhir {
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// locationOf is the URL of what a 201 answer created (as FHIR create and REST expect in
// Location), read from the answer itself so that a replayed answer has it too.
func locationOf(data []byte) string {
	var created struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Conversation *struct {
			ID string `json:"id"`
		} `json:"conversation"`
		Message *struct {
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
		} `json:"message"`
	}
	if json.Unmarshal(data, &created) != nil {
		return ""
	}
	switch {
	case created.ResourceType == "Communication" && created.ID != "":
		return FHIRPrefix + "/Communication/" + url.PathEscape(created.ID)
	case created.Conversation != nil && created.Conversation.ID != "":
		return RESTPrefix + "/conversations/" + url.PathEscape(created.Conversation.ID)
	case created.Message != nil && created.Message.ID != "":
		return RESTPrefix + "/conversations/" + url.PathEscape(created.Message.ConversationID) + "/messages/" + url.PathEscape(created.Message.ID)
	}
	return ""
}

func writeError(w http.ResponseWriter, e *Error) {
	writeRaw(w, e.Status, encodeError(e, false), false)
}

// encodeError is the body of an error answer: {"error": …}, or a FHIR OperationOutcome.
func encodeError(e *Error, fhir bool) []byte {
	var v any = map[string]any{"error": e}
	if fhir {
		v = outcomeOf(e)
	}
	data, _ := json.Marshal(v)
	return data
}
