package securechat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

const (
	testClinic        = "Riverside Clinic"
	testLoginID       = "15550001111"
	testPortalID      = "15551234567"
	testClinicPhone   = "+15550001111"
	testPatientPhone  = "+15551234567"
	testStaffName     = "Nurse Kim"
	previewBotAgent   = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
	whatsAppBotAgent  = "WhatsApp/2.23.20.0 A"
	iMessageBotAgent  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
	expectedCSPHeader = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// webBackend records what the service asks the bridge to do.
type webBackend struct {
	mu       sync.Mutex
	sms      []string
	patient  []patientCall
	reads    []int64
	failNext error
}

type patientCall struct {
	Kind        database.SecureMessageKind
	Text        string
	ContentType string
	Data        []byte
}

var _ Backend = (*webBackend)(nil)

func (b *webBackend) SendSMS(_ context.Context, conv *database.Conversation, text string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if conv.PatientPhone == "" {
		return fmt.Errorf("no patient phone")
	}
	b.sms = append(b.sms, text)
	return nil
}

func (b *webBackend) PatientMessage(_ context.Context, _ *database.Conversation, msg *Message, data []byte) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.failNext; err != nil {
		b.failNext = nil
		return "", err
	}
	b.patient = append(b.patient, patientCall{Kind: msg.Kind, Text: msg.Text, ContentType: msg.ContentType,
		Data: bytes.Clone(data)})
	return fmt.Sprintf("$event%d", msg.ID), nil
}

func (b *webBackend) PatientRead(_ context.Context, _ *database.Conversation, newest *Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, newest.ID)
	return nil
}

func (b *webBackend) texts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.sms...)
}

func (b *webBackend) patientCalls() []patientCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]patientCall(nil), b.patient...)
}

var codeInText = regexp.MustCompile(`\b(\d{6})\b`)

// lastCode reads the code from the newest text.
func (b *webBackend) lastCode(t testing.TB) string {
	t.Helper()
	texts := b.texts()
	require.NotEmpty(t, texts, "no code was texted")
	m := codeInText.FindStringSubmatch(texts[len(texts)-1])
	require.NotNil(t, m, "no 6-digit code in %q", texts[len(texts)-1])
	return m[1]
}

// webClock is the service's clock, moved by tests.
type webClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *webClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *webClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// webEnv is a bridge's worth of secure chat: a database, the service, the pages on a
// loopback server, one conversation and a link to it.
type webEnv struct {
	t       testing.TB
	db      *database.Database
	svc     *Service
	web     *Web
	backend *webBackend
	clock   *webClock
	srv     *httptest.Server
	conv    *database.Conversation
	token   string
	linkURL string
}

type webEnvOptions struct {
	insecure bool // plain http on 127.0.0.1 with InsecureCookies, as a demo bridge
}

func webTestConfig() *config.SecureChatConfig {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &config.SecureChatConfig{
		DefaultMode:      "secure",
		EncryptionKey:    base64.StdEncoding.EncodeToString(key),
		LinkLifetime:     72 * time.Hour,
		CodeLifetime:     10 * time.Minute,
		MaxWrongCodes:    5,
		CodesPerHour:     5,
		SessionIdle:      15 * time.Minute,
		SessionMax:       12 * time.Hour,
		AlertQuietPeriod: 15 * time.Minute,
		Language:         "en",
		MaxUploadMB:      20,
	}
}

func openWebTestDB(t testing.TB, kind string) *database.Database {
	t.Helper()
	spec := testenv.NewDatabase(t, kind)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	require.NoError(t, db.Upgrade(context.Background()))
	return db
}

func newWebEnv(t testing.TB, kind string, opts webEnvOptions) *webEnv {
	t.Helper()
	ctx := context.Background()
	e := &webEnv{t: t, db: openWebTestDB(t, kind), backend: &webBackend{},
		clock: &webClock{now: time.UnixMilli(time.Now().UnixMilli())}}
	mux := http.NewServeMux()
	if opts.insecure {
		e.srv = httptest.NewServer(mux)
	} else {
		e.srv = httptest.NewTLSServer(mux)
	}
	t.Cleanup(e.srv.Close)
	var err error
	e.svc, err = NewService(e.db, webTestConfig(), testClinic, e.srv.URL)
	require.NoError(t, err)
	e.svc.Backend = e.backend
	e.svc.Now = e.clock.Now
	e.web = NewWeb(e.svc, WebOptions{PublicURL: e.srv.URL, InsecureCookies: opts.insecure})
	e.web.Register(mux)

	e.conv = e.newConversation(testPortalID, testPatientPhone)
	e.linkURL, err = e.svc.IssueLink(ctx, e.conv, testNurse)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(e.linkURL, e.srv.URL+LinkPath), e.linkURL)
	e.token = strings.TrimPrefix(e.linkURL, e.srv.URL+LinkPath)
	return e
}

// host is the pages' host, as the code text's origin-bound line names it.
func (e *webEnv) host() string {
	u, err := url.Parse(e.srv.URL)
	require.NoError(e.t, err)
	return u.Hostname()
}

func (e *webEnv) newConversation(portalID, patientPhone string) *database.Conversation {
	conv, err := e.db.Conversation.GetOrCreate(context.Background(), &database.Conversation{
		LoginID: testLoginID, PortalID: portalID, ClinicPhone: testClinicPhone, PatientPhone: patientPhone,
		PatientName: "Maria Lopez", Mode: database.ModeSecure,
	})
	require.NoError(e.t, err)
	return conv
}

// storedMessages is the conversation's secure copy.
func (e *webEnv) storedMessages() []*database.SecureMessage {
	rows, err := e.db.Secure.List(context.Background(), e.conv.LoginID, e.conv.PortalID, 0, 1000)
	require.NoError(e.t, err)
	return rows
}

func (e *webEnv) linkRow() *database.SecureLink {
	row, err := e.db.Link.Get(context.Background(), e.svc.Keys.Hash("link", e.token))
	require.NoError(e.t, err)
	return row
}

// staffMessage keeps a staff message, each from its own Matrix event.
func (e *webEnv) staffMessage(text string) *Message {
	msg, err := e.svc.AddStaffMessage(context.Background(), e.conv, testNurse, testStaffName, database.SecureText, text, "", nil,
		"$staff"+strconv.FormatInt(time.Now().UnixNano(), 36))
	require.NoError(e.t, err)
	return msg
}

// client is one browser: its own cookies, no redirects followed.
type webClient struct {
	e    *webEnv
	http *http.Client
}

func (e *webEnv) newClient() *webClient {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	hc := e.srv.Client()
	hc = &http.Client{Transport: hc.Transport, Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &webClient{e: e, http: hc}
}

type webResult struct {
	Status int
	Header http.Header
	Body   string
}

func (r *webResult) Location() string { return r.Header.Get("Location") }

func (c *webClient) do(req *http.Request) *webResult {
	c.e.t.Helper()
	resp, err := c.http.Do(req)
	require.NoError(c.e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(c.e.t, err)
	return &webResult{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (c *webClient) request(method, path string, body io.Reader, header ...string) *webResult {
	c.e.t.Helper()
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	require.NoError(c.e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.do(req)
}

func (c *webClient) get(path string, header ...string) *webResult {
	c.e.t.Helper()
	return c.request(http.MethodGet, path, nil, header...)
}

func (c *webClient) post(path string, form url.Values, header ...string) *webResult {
	c.e.t.Helper()
	header = append(header, "Content-Type", "application/x-www-form-urlencoded")
	return c.request(http.MethodPost, path, strings.NewReader(form.Encode()), header...)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "no csrf field in the page")
	return m[1]
}

func (c *webClient) cookie(name string) *http.Cookie {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// requestCode opens the link and taps "Text me a code"; it returns the code page's
// CSRF token and the texted code.
func (c *webClient) requestCode() (csrf, code string) {
	c.e.t.Helper()
	page := c.get(LinkPath + c.e.token)
	require.Equal(c.e.t, http.StatusOK, page.Status, page.Body)
	csrf = csrfOf(c.e.t, page.Body)
	res := c.post(LinkPath+c.e.token+"/code", url.Values{"csrf": {csrf}})
	require.Equal(c.e.t, http.StatusSeeOther, res.Status, res.Body)
	require.Equal(c.e.t, LinkPath+c.e.token+"/verify?sent=1", res.Location())
	return csrf, c.e.backend.lastCode(c.e.t)
}

func (c *webClient) verify(csrf, code string, extra url.Values) *webResult {
	c.e.t.Helper()
	form := url.Values{"csrf": {csrf}, "code": {code}}
	for k, v := range extra {
		form[k] = v
	}
	return c.post(LinkPath+c.e.token+"/verify", form)
}

// signIn goes through the link and the code, and returns the chat page.
func (c *webClient) signIn() *webResult {
	c.e.t.Helper()
	csrf, code := c.requestCode()
	res := c.verify(csrf, code, nil)
	require.Equal(c.e.t, http.StatusSeeOther, res.Status, res.Body)
	require.Equal(c.e.t, "/chat", res.Location())
	chat := c.get("/chat")
	require.Equal(c.e.t, http.StatusOK, chat.Status, chat.Body)
	return chat
}

type filePart struct {
	Field, Name, ContentType string
	Data                     []byte
}

// multipartForm builds an upload body; csrf "" leaves the field out.
func multipartForm(t testing.TB, csrf string, files ...filePart) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if csrf != "" {
		require.NoError(t, mw.WriteField("csrf", csrf))
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		// As browsers write it: the name raw, quotes percent-encoded.
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, f.Field,
			strings.ReplaceAll(f.Name, `"`, "%22")))
		h.Set("Content-Type", f.ContentType)
		part, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = part.Write(f.Data)
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return mw.FormDataContentType(), buf.Bytes()
}

func (c *webClient) upload(csrf string, files ...filePart) *webResult {
	c.e.t.Helper()
	contentType, body := multipartForm(c.e.t, csrf, files...)
	return c.request(http.MethodPost, "/chat/upload", bytes.NewReader(body), "Content-Type", contentType)
}

// eachWebDB runs fn on every database kind, each with its own environment.
func eachWebDB(t *testing.T, opts webEnvOptions, fn func(t *testing.T, e *webEnv)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, newWebEnv(t, kind, opts))
		})
	}
}
