//go:build e2eepatient

package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// DefaultMaxBodyBytes bounds a request body when Config.MaxBodyBytes is zero. The largest
// bodies the page sends are a dehydrated device with its one-time keys (about 30 KiB) and a
// room key shared by olm with every staff device (about 1.5 KiB a device).
const DefaultMaxBodyBytes = 256 << 10

// Config is one proxy instance: one patient-web user, its devices and its secure room.
type Config struct {
	// HomeserverURL is the client-server API base the proxy relays to.
	HomeserverURL string
	// ASToken is the appservice's as_token; the proxy masquerades with it and the browser never
	// sees it.
	ASToken string
	// UserID is the patient-web user (not the SMS ghost).
	UserID id.UserID
	// DeviceIDs are the patient's browser devices, created with MSC4190. A request acts as the
	// one its session names (WithDevice).
	DeviceIDs []id.DeviceID
	// RoomID is the one secure room: staff and the patient-web user, never the bridge bot.
	RoomID id.RoomID
	// Members returns the secure room's joined members; it is called once per request that
	// names other users (keys/query, keys/claim, sendToDevice).
	Members func(ctx context.Context) ([]id.UserID, error)
	// MaxBodyBytes bounds a request body (413 beyond); zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// KeysUploaded, when set, gets the one-time key counts of each keys/upload the homeserver
	// answered 200, before the page sees the answer: Inbox.KeysUploaded, so that the events
	// endpoint does not hand the page counts from before its upload.
	KeysUploaded func(ctx context.Context, device id.DeviceID, counts map[id.KeyAlgorithm]int)
	// HTTPClient talks to the homeserver; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
}

// Proxy relays a patient browser's Matrix requests to the homeserver as the patient-web user
// and the session's device, by appservice masquerading (the as_token with user_id= and the
// MSC3202/MSC4190 device_id= parameters), and only the requests on its allowlist, each with
// its body checked: everything else is answered 403 before it reaches the homeserver.
//
// The Proxy does no authentication of its own. Mount it behind the secure chat's session
// (strip the mount prefix so paths start with /_matrix/client/), on requests that are already
// authenticated, and put the session's device in the request context with WithDevice. The
// browser never holds a Matrix access token; whatever query string or headers it sends are
// dropped, and the body forwarded is the one the proxy checked, re-encoded.
type Proxy struct {
	cfg     Config
	hs      *url.URL
	devices map[id.DeviceID]bool
	client  *http.Client
	maxBody int64
}

var _ http.Handler = (*Proxy)(nil)

// New checks cfg and returns its proxy.
func New(cfg Config) (*Proxy, error) {
	hs, err := url.Parse(cfg.HomeserverURL)
	if err != nil || (hs.Scheme != "http" && hs.Scheme != "https") || hs.Host == "" {
		return nil, fmt.Errorf("homeserver URL %q is not an http(s) URL", cfg.HomeserverURL)
	}
	switch {
	case cfg.ASToken == "":
		return nil, errors.New("the appservice as_token is empty")
	case cfg.UserID == "":
		return nil, errors.New("the patient-web user ID is empty")
	case len(cfg.DeviceIDs) == 0:
		return nil, errors.New("the patient-web user has no device IDs")
	case cfg.RoomID == "":
		return nil, errors.New("the secure room ID is empty")
	case cfg.Members == nil:
		return nil, errors.New("no Members function for the secure room")
	}
	p := &Proxy{cfg: cfg, hs: hs, devices: map[id.DeviceID]bool{}, client: cfg.HTTPClient, maxBody: cfg.MaxBodyBytes}
	for _, d := range cfg.DeviceIDs {
		p.devices[d] = true
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 60 * time.Second}
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxBodyBytes
	}
	return p, nil
}

type deviceKey struct{}

// WithDevice returns ctx naming the patient device the session's browser is. The session layer
// sets it; a request without it, or naming a device not in Config.DeviceIDs, is refused.
func WithDevice(ctx context.Context, device id.DeviceID) context.Context {
	return context.WithValue(ctx, deviceKey{}, device)
}

func deviceFrom(ctx context.Context) id.DeviceID {
	d, _ := ctx.Value(deviceKey{}).(id.DeviceID)
	return d
}

// call is one request being checked: its path variables, body and device.
type call struct {
	ctx    context.Context
	vars   []string
	body   []byte
	device id.DeviceID
}

// methods the proxy knows at all; any other is 405 whatever the path.
var knownMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete}

// ServeHTTP checks the request against the allowlist and relays it, or answers the refusal.
func (p *Proxy) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	log := zerolog.Ctx(r.Context()).With().Str("component", "e2ee_proxy").Str("method", r.Method).Logger()
	if !slices.Contains(knownMethods, r.Method) {
		p.refuse(rw, &log, "", errMethod)
		return
	}
	rt, vars, allow := match(r.URL.EscapedPath(), r.Method)
	if rt == nil {
		if len(allow) > 0 {
			rw.Header().Set("Allow", strings.Join(allow, ", "))
			p.refuse(rw, &log, "", errMethod)
		} else {
			p.refuse(rw, &log, "", errNotAllowed)
		}
		return
	}
	log = log.With().Str("route", rt.name).Logger()
	c := &call{ctx: r.Context(), vars: vars, device: deviceFrom(r.Context())}
	if !p.devices[c.device] {
		p.refuse(rw, &log, rt.name, errNoDevice)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, p.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p.refuse(rw, &log, rt.name, errTooLarge)
		} else {
			p.refuse(rw, &log, rt.name, errNotJSON)
		}
		return
	}
	c.body = body
	out, d := rt.check(p, c)
	if d != nil {
		p.refuse(rw, &log, rt.name, d)
		return
	}
	p.forward(rw, r, &log, rt, c, out)
}

func (p *Proxy) refuse(rw http.ResponseWriter, log *zerolog.Logger, route string, d *denial) {
	log.Debug().Str("route", route).Str("reason", d.reason).Int("status", d.StatusCode).Msg("Patient proxy refused a request")
	d.write(rw)
}

// forward relays the checked request: the canonical path, the masquerading query and the
// as_token, and out (re-encoded) as the body; nothing else of the browser's request goes on.
func (p *Proxy) forward(rw http.ResponseWriter, r *http.Request, log *zerolog.Logger, rt *route, c *call, out any) {
	segs := make([]any, 0, len(rt.pattern)+2)
	segs = append(segs, "_matrix", "client")
	vi := 0
	for _, s := range rt.pattern {
		if s == "*" {
			segs = append(segs, c.vars[vi])
			vi++
		} else {
			segs = append(segs, s)
		}
	}
	u := mautrix.BuildURL(p.hs, segs...)
	q := url.Values{}
	q.Set("user_id", p.cfg.UserID.String())
	q.Set("device_id", c.device.String())
	q.Set("org.matrix.msc3202.device_id", c.device.String())
	u.RawQuery = q.Encode()

	var body io.Reader
	if out != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			p.refuse(rw, log, rt.name, errNotJSON)
			return
		}
		body = &buf
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		p.refuse(rw, log, rt.name, errUpstream)
		return
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.ASToken)
	req.Header.Set("Accept", "application/json")
	if out != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// The error would print the URL; its query holds IDs but no token. Say only that it failed.
		log.Warn().Msg("Patient proxy could not reach the homeserver")
		errUpstream.write(rw)
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		rw.Header().Set("Content-Type", ct)
	}
	rw.Header().Set("Cache-Control", "no-store")
	var respBody io.Reader = resp.Body
	if rt.name == "keys/upload" && resp.StatusCode == http.StatusOK && p.cfg.KeysUploaded != nil {
		// The answer is small ({"one_time_key_counts":{…}}); read it to hand its counts on.
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			log.Warn().Msg("Patient proxy could not read the homeserver's keys/upload answer")
			errUpstream.write(rw)
			return
		}
		var answer struct {
			Counts map[id.KeyAlgorithm]int `json:"one_time_key_counts"`
		}
		if json.Unmarshal(raw, &answer) == nil {
			p.cfg.KeysUploaded(r.Context(), c.device, answer.Counts)
		}
		respBody = bytes.NewReader(raw)
	}
	rw.WriteHeader(resp.StatusCode)
	if _, err = io.Copy(rw, respBody); err != nil {
		log.Debug().Msg("Patient proxy could not relay the whole response")
	}
	log.Debug().Int("status", resp.StatusCode).Msg("Patient proxy relayed a request")
}

// decodeStrict decodes body into v refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) *denial {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return errUnknownField
		}
		return errNotJSON
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errNotJSON
	}
	return nil
}

// members returns the secure room's joined members as a set.
func (p *Proxy) members(ctx context.Context) (map[id.UserID]bool, *denial) {
	list, err := p.cfg.Members(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Patient proxy could not read the secure room's members")
		return nil, errMembers
	}
	set := make(map[id.UserID]bool, len(list))
	for _, u := range list {
		set[u] = true
	}
	return set, nil
}
