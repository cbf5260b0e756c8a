package securechat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// WebOptions configures the patient pages.
type WebOptions struct {
	// PublicURL is where patients reach the bridge (the base of the links); https://
	// turns on HSTS even when TLS ends at a proxy in front.
	PublicURL string
	// InsecureCookies drops the cookies' Secure flag and __Host- prefix (browsers refuse
	// one without the other). Only for a bridge reached at http://127.0.0.1 or
	// http://localhost (demo, tests).
	InsecureCookies bool
	// Log, when set, is the logger of requests whose context carries none.
	Log *zerolog.Logger
	// Location is the clinic's time zone (business_hours.time_zone), which the pages show
	// times in; nil is UTC.
	Location *time.Location
	// CodePagePreloads are fetched by the browser while the patient waits for the texted code
	// and types it, for the page that follows. Nil in default builds; only issue 18's spike (the
	// e2eepatient build) sets them: its page's wasm and modules.
	CodePagePreloads []Preload
}

// Preload is a resource of this origin (a path) that a page asks the browser to fetch before
// it is needed, at low priority, with its SRI value: a JavaScript module is a
// <link rel="modulepreload"> (CSP script-src), anything else a <link rel="preload" as="fetch"
// crossorigin> (CSP connect-src), which a later fetch(url, {integrity}) reads from the HTTP
// cache. Both are 'self' in the pages' policy, which stays as it is. (Not rel="prefetch": CSP
// Level 3 gives it to default-src, 'none' here; Chromium 156 lets it through anyway.)
type Preload struct {
	URL, Integrity string
	Module         bool
}

// LoopbackHTTP reports a public address of http://127.0.0.1 or http://localhost, the
// only case where the secure chat's cookies may go without the Secure flag.
func LoopbackHTTP(base string) bool {
	u, err := url.Parse(base)
	return err == nil && u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost")
}

// Web serves the patient pages of secure mode over the Service: the link, the code,
// the chat with its live updates and uploads. Everything works without JavaScript.
type Web struct {
	svc   *Service
	opts  WebOptions
	pages map[string]*template.Template

	assets       map[string]asset
	assetVersion string
	// keepalive is how often an open event stream gets a comment (proxies close idle ones).
	keepalive time.Duration
	// crossOrigin refuses state-changing requests another site's page makes (Fetch
	// metadata and Origin), a second layer under the CSRF tokens.
	crossOrigin *http.CrossOriginProtection
}

type asset struct {
	contentType string
	data        []byte
	etag        string
}

//go:embed assets
var assetFS embed.FS

// ContentSecurityPolicy is the pages' policy: only this origin's script, styles and images.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ChatPath is the chat page. A page served elsewhere behind the session (issue 18's spike)
// answers a signed-out request as this one does.
const ChatPath = "/chat"

const (
	assetPrefix = "/assets/securechat/"
	signedOut   = "/chat/signed-out"
)

// NewWeb builds the pages; mount them with Register.
func NewWeb(svc *Service, opts WebOptions) *Web {
	w := &Web{svc: svc, opts: opts, pages: map[string]*template.Template{}, assets: map[string]asset{},
		keepalive: 25 * time.Second}
	layout := template.Must(template.ParseFS(assetFS, "assets/templates/layout.html"))
	for _, page := range []string{"link", "code", "chat", "notice"} {
		w.pages[page] = template.Must(template.Must(layout.Clone()).ParseFS(assetFS, "assets/templates/"+page+".html"))
	}
	version := sha256.New()
	for name, contentType := range map[string]string{
		"chat.css": "text/css; charset=utf-8",
		"chat.js":  "text/javascript; charset=utf-8",
		"code.js":  "text/javascript; charset=utf-8",
		"icon.svg": "image/svg+xml",
	} {
		data, err := fs.ReadFile(assetFS, "assets/"+name)
		if err != nil {
			panic(err)
		}
		w.addAsset(name, contentType, data, version)
	}
	for _, size := range iconSizes {
		w.addAsset("icon-"+strconv.Itoa(size)+".png", "image/png", lockIcon(size), version)
	}
	w.assetVersion = hex.EncodeToString(version.Sum(nil)[:6])
	w.crossOrigin = http.NewCrossOriginProtection()
	if u, err := url.Parse(opts.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		// Behind a reverse proxy the Host the bridge sees may differ from the public one.
		_ = w.crossOrigin.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	w.crossOrigin.SetDenyHandler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		logOf(r).Warn().Msg("Refused a cross-origin request")
		back := ChatPath
		if strings.HasPrefix(r.URL.Path, LinkPath) {
			back = path.Dir(r.URL.Path)
		}
		w.csrfFailed(rw, r, back)
	}))
	return w
}

// addAsset serves data under assetPrefix+name; its hash goes into the assets' version.
func (w *Web) addAsset(name, contentType string, data []byte, version hash.Hash) {
	sum := sha256.Sum256(data)
	w.assets[name] = asset{contentType: contentType, data: data, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	version.Write(sum[:])
}

// Register mounts the pages on the bridge's router (Go 1.22 patterns).
func (w *Web) Register(mux *http.ServeMux) {
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, w.wrap(w.crossOrigin.Handler(h))) }
	toLink := func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, LinkPath+r.PathValue("token"), http.StatusSeeOther)
	}
	toChat := func(rw http.ResponseWriter, r *http.Request) { http.Redirect(rw, r, ChatPath, http.StatusSeeOther) }

	handle("GET "+LinkPath+"{token}", w.handleLink)
	handle("POST "+LinkPath+"{token}/code", w.handleSendCode)
	handle("GET "+LinkPath+"{token}/code", toLink)
	handle("GET "+LinkPath+"{token}/verify", w.handleCodePage)
	handle("POST "+LinkPath+"{token}/verify", w.handleVerify)

	handle("GET "+ChatPath, w.handleChat)
	handle("POST "+ChatPath+"/send", w.handleSend)
	handle("POST "+ChatPath+"/upload", w.handleUpload)
	handle("GET "+ChatPath+"/file/{id}", w.handleFile)
	handle("GET "+ChatPath+"/file/{id}/preview", w.handlePreview)
	handle("GET "+ChatPath+"/messages", w.handleMessages)
	handle("GET "+ChatPath+"/events", w.handleEvents)
	handle("POST "+ChatPath+"/signout", w.handleSignOut)
	handle("GET "+signedOut, w.handleSignedOut)
	for _, path := range []string{"/send", "/upload", "/signout"} {
		handle("GET "+ChatPath+path, toChat)
	}

	handle("GET "+assetPrefix+"{file}", w.handleAsset)
	handle("GET "+manifestPath, w.handleManifest)
}

type langKey struct{}

// SetPageHeaders sets what every response of the patient pages carries: csp as the policy,
// no referrer, no sniffing, no framing, same-origin opener and resource policies, never
// cached. A page served elsewhere (issue 18's spike) sets them with its own policy.
func SetPageHeaders(hdr http.Header, csp string) {
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	hdr.Set("Cache-Control", "no-store")
}

// wrap sets the headers every response carries, the request's logger and its language.
func (w *Web) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hdr := rw.Header()
		SetPageHeaders(hdr, ContentSecurityPolicy)
		if r.TLS != nil || strings.HasPrefix(strings.ToLower(w.opts.PublicURL), "https://") {
			hdr.Set("Strict-Transport-Security", "max-age=31536000")
		}
		ctx := r.Context()
		if w.opts.Log != nil && zerolog.Ctx(ctx).GetLevel() == zerolog.Disabled {
			// Only the route is logged: paths carry link tokens.
			ctx = w.opts.Log.With().Str("component", "secure chat").Str("route", r.Pattern).Logger().WithContext(ctx)
		}
		ctx = context.WithValue(ctx, langKey{}, w.chooseLang(rw, r))
		h.ServeHTTP(rw, r.WithContext(ctx))
	})
}

func langOf(r *http.Request) string {
	if lang, ok := r.Context().Value(langKey{}).(string); ok {
		return lang
	}
	return langEnglish
}

// ---- cookies --------------------------------------------------------------------

// cookieName adds the __Host- prefix (Secure, Path=/, no Domain) unless cookies are insecure.
func (w *Web) cookieName(base string) string {
	if w.opts.InsecureCookies {
		return base
	}
	return "__Host-" + base
}

func (w *Web) sessionCookie() string { return w.cookieName("carebridge") }
func (w *Web) csrfCookie() string    { return w.cookieName("carebridge-csrf") }

// setCookie sets a browser-session cookie (no Max-Age), or clears it with clear.
func (w *Web) setCookie(rw http.ResponseWriter, name, value string, clear bool) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: !w.opts.InsecureCookies, HttpOnly: true,
		SameSite: http.SameSiteStrictMode}
	if clear {
		c.Value, c.MaxAge = "", -1
	}
	http.SetCookie(rw, c)
}

func (w *Web) sessionToken(r *http.Request) string {
	if c, err := r.Cookie(w.sessionCookie()); err == nil {
		return c.Value
	}
	return ""
}

func randomValue() string {
	buf := make([]byte, 32)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// preSessionCSRF returns the double-submit token of the code forms, setting its cookie
// when the browser has none yet.
func (w *Web) preSessionCSRF(rw http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(w.csrfCookie()); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	value := randomValue()
	w.setCookie(rw, w.csrfCookie(), value, false)
	return value
}

// checkPreSessionCSRF compares the form's token with the cookie's, in constant time.
func (w *Web) checkPreSessionCSRF(r *http.Request) bool {
	c, err := r.Cookie(w.csrfCookie())
	return err == nil && sameToken(c.Value, r.PostFormValue("csrf"))
}

func sameToken(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// ---- rendering ------------------------------------------------------------------

// view is what a page template gets. T translates into the page's language.
type view struct {
	Lang        string
	Title       string
	Clinic      string
	SwitchURL   string
	SwitchLang  string
	SwitchLabel string
	CSS, JS     string
	Icon        string // the asset path of the icons, without size and extension
	Version     string // the assets' version, for their URLs
	Script      bool
	CSRF        string

	// The link and code pages.
	Token    string
	PhoneEnd string
	Minutes  int
	Sent     bool
	NeedDOB  bool
	Error    string
	Warning  string
	Preloads []Preload // the code page's (WebOptions.CodePagePreloads)

	// Notice pages.
	Heading     string
	Paragraphs  []string
	SMSLink     template.URL
	ClinicPhone string
	BackURL     string
	BackLabel   string

	// Every page's footer: the clinic's number (the conversation's where the page knows
	// it) as a link that opens a text to it, and the clinic's own pages.
	FooterPhone      string
	FooterSMS        template.URL
	clinicPhone      string // the footer's number in E.164
	HelpURL          string
	PrivacyURL       string
	AccessibilityURL string

	// The chat page.
	Messages       []chatMessage
	LastID         int64
	Seen           bool   // the newest message is the patient's, and the clinic has seen it
	TypingText     string // who of the staff is typing ("Jane is typing…"), or ""
	Notice         string
	SendError      string
	UploadError    string
	Draft          string
	MaxUploadMB    int
	MaxUploadBytes int64
	IdleMinutes    int
	// RefreshAfter (seconds) reloads a chat page without script: for new messages, and to
	// the signed-out page once the session has ended.
	RefreshAfter int
	// RefreshURL and CheckURL load the chat page again. Each differs from the page's own
	// URL: a link to the same URL with a #fragment only scrolls, it does not reload.
	RefreshURL, CheckURL string
}

// T returns the catalog string key in the page's language, formatted with args.
func (v *view) T(key string, args ...any) string { return translate(v.Lang, key, args...) }

// newView fills the parts every page has. switchPath is the page the language switch
// reloads (a GET page, also for pages that answer a POST).
func (w *Web) newView(r *http.Request, switchPath string) *view {
	lang := langOf(r)
	other := otherLang(lang)
	pages := w.svc.Config.Pages
	v := &view{
		Lang:        lang,
		Clinic:      w.svc.ClinicName,
		SwitchURL:   switchPath + "?lang=" + other,
		SwitchLang:  other,
		SwitchLabel: translate(other, "lang.name"),
		CSS:         assetPrefix + "chat.css?v=" + w.assetVersion,
		JS:          assetPrefix + "chat.js?v=" + w.assetVersion,
		Icon:        assetPrefix + "icon",
		Version:     w.assetVersion,

		HelpURL:          pages.HelpURL,
		PrivacyURL:       pages.PrivacyURL,
		AccessibilityURL: pages.AccessibilityURL,
	}
	v.setClinicPhone(pages.ClinicPhone)
	return v
}

// setClinicPhone shows phone (E.164) as the clinic's number in the footer; a page that
// knows the conversation calls it with the conversation's number.
func (v *view) setClinicPhone(phone string) {
	if !isE164(phone) {
		return
	}
	v.clinicPhone, v.FooterPhone, v.FooterSMS = phone, displayPhone(phone), smsLink(phone, "")
}

// smsLink opens the phone's messages app with a text to phone (E.164), body filled in.
// "?&body=" is the form both iOS and Android read.
func smsLink(phone, body string) template.URL {
	if body == "" {
		return template.URL("sms:" + phone) // only '+' and digits
	}
	return template.URL("sms:" + phone + "?&body=" + url.PathEscape(body))
}

func (w *Web) render(rw http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	var buf bytes.Buffer
	if err := w.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		logOf(r).Err(err).Str("page", page).Msg("Failed to render secure chat page")
		http.Error(rw, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write(buf.Bytes())
}

// notice renders a page of plain words: a heading, paragraphs and an action.
func (w *Web) notice(rw http.ResponseWriter, r *http.Request, status int, kind, switchPath string, fill func(v *view)) {
	v := w.newView(r, switchPath)
	v.Title = v.T("notice." + kind + ".title")
	v.Heading = v.T("notice." + kind + ".heading")
	if fill != nil {
		fill(v)
	}
	if v.Paragraphs == nil {
		v.Paragraphs = []string{v.T("notice." + kind + ".body")}
	}
	w.render(rw, r, status, "notice", v)
}

// serverError logs err and tells the patient in plain words.
func (w *Web) serverError(rw http.ResponseWriter, r *http.Request, err error, msg string) {
	logOf(r).Err(err).Msg(msg)
	if wantsJSON(r) {
		writeJSON(rw, http.StatusInternalServerError, map[string]any{"error": translate(langOf(r), "notice.error.body")})
		return
	}
	w.notice(rw, r, http.StatusInternalServerError, "error", ChatPath, nil)
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(rw http.ResponseWriter, status int, value any) {
	data, err := json.Marshal(value)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write(data)
}

// ---- assets ---------------------------------------------------------------------

// handleAsset serves the embedded stylesheet and script. Their URLs carry a version,
// so they can be cached for long.
func (w *Web) handleAsset(rw http.ResponseWriter, r *http.Request) {
	a, ok := w.assets[r.PathValue("file")]
	if !ok {
		http.NotFound(rw, r)
		return
	}
	hdr := rw.Header()
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", a.etag)
	if r.Header.Get("If-None-Match") == a.etag {
		rw.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	_, _ = rw.Write(a.data)
}

// logOf is the request's logger. Never log tokens, codes, session IDs, dates of birth
// or message bodies.
func logOf(r *http.Request) *zerolog.Logger { return zerolog.Ctx(r.Context()) }
