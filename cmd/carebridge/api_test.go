package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// Bearer tokens of the test's integrations (the config holds their SHA-256 only).
const (
	ehrToken     = "cbt_test-ehr-token-0123456789abcdefghijklmnopqrstuv"
	readerToken  = "cbt_test-reader-token-0123456789abcdefghijklmnopqr"
	limitedToken = "cbt_test-limited-token-0123456789abcdefghijklmnopq"
	// eventSecret is a Standard Webhooks secret (whsec_ and a base64 key): the ehr
	// integration's events carry both signatures.
	eventSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

func tokenSHA(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// eventReceiver is an integration's event endpoint that fails its first two deliveries,
// then accepts; it checks each signature and records what it accepted, in order.
type eventReceiver struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	attempts int
	failed   int
	accepted []map[string]any
	badSig   int
	// down makes every delivery fail (the receiver's outage).
	down bool
}

func newEventReceiver(t *testing.T, failFirst int) *eventReceiver {
	r := &eventReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts++
		if err := apiContract(t).checkEvent(req, body); err != nil {
			t.Errorf("an event delivery breaks docs/openapi.json (x-webhooks event):\n%v\nbody: %s", err, body)
		}
		// As a Standard Webhooks receiver checks it, with the specification's own library.
		wh, err := standardwebhooks.NewWebhook(eventSecret)
		require.NoError(t, err)
		if err = wh.Verify(body, req.Header); err != nil || req.Header.Get("webhook-id") != req.Header.Get("Carebridge-Event-Id") {
			t.Errorf("a delivery's Standard Webhooks signature does not verify: %v", err)
			r.badSig++
		}
		if !validEventSignature(req.Header.Get("Carebridge-Signature"), body) {
			r.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.failed < failFirst || r.down {
			r.failed++
			http.Error(w, "receiver down", http.StatusServiceUnavailable)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil || ev["id"] != req.Header.Get("Carebridge-Event-Id") {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		r.accepted = append(r.accepted, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func validEventSignature(header string, body []byte) bool {
	m := regexp.MustCompile(`^t=(\d+),v1=([0-9a-f]{64})$`).FindStringSubmatch(header)
	if m == nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(eventSecret))
	mac.Write([]byte(m[1] + "."))
	mac.Write(body)
	return hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(m[2]))
}

func (r *eventReceiver) waitFor(ctx context.Context, kind string, n int) []map[string]any {
	r.t.Helper()
	for {
		r.mu.Lock()
		var got []map[string]any
		for _, ev := range r.accepted {
			if ev["type"] == kind {
				got = append(got, ev)
			}
		}
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("the receiver did not get %d %s event(s)", n, kind)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiClient calls the bridge's integration API as an EHR would.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

type apiAnswer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// call makes a request and checks it and its answer against docs/openapi.json.
func (c apiClient) call(method, path, body string, header ...string) apiAnswer {
	c.t.Helper()
	contract := apiContract(c.t)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	assert.NoError(c.t, contract.checkExchange(req, []byte(body), resp.StatusCode, resp.Header, raw))
	a := apiAnswer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Body)
	return a
}

// field reads a nested field of a JSON answer ("conversation.patient.name").
func (a apiAnswer) field(path string) any {
	var v any = a.Body
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func (a apiAnswer) str(path string) string { s, _ := a.field(path).(string); return s }

// errorCode is the code of a REST error answer.
func (a apiAnswer) errorCode() string { return a.str("error.code") }

// outcome is the first issue of a FHIR OperationOutcome answer.
func (a apiAnswer) outcome() (code, expression string) {
	if a.str("resourceType") != "OperationOutcome" {
		return "", ""
	}
	issues, _ := a.Body["issue"].([]any)
	if len(issues) == 0 {
		return "", ""
	}
	issue := issues[0].(map[string]any)
	code, _ = issue["code"].(string)
	if exprs, ok := issue["expression"].([]any); ok && len(exprs) > 0 {
		expression, _ = exprs[0].(string)
	}
	return code, expression
}

// readSecureChat plays the patient opening a secure chat link as plain HTTP (the pages
// work without scripts): the code is read at the fake Twilio, and the chat page shows
// (and so marks read) every message. dob is the date of birth the link asks for, if any.
func readSecureChat(t *testing.T, ctx context.Context, e *env, phone, dob, link string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(link)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	csrf := ""
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "carebridge-csrf") {
			csrf = c.Value
		}
	}
	require.NotEmpty(t, csrf)
	before := len(e.fake.Messages())
	resp, err = client.PostForm(link+"/code", url.Values{"csrf": {csrf}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	codeSMS, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == phone && strings.Contains(m.Body, "your code is") && len(e.fake.Messages()) > before
	})
	require.NoError(t, err)
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(codeSMS.Body)
	resp, err = client.PostForm(link+"/verify", url.Values{"csrf": {csrf}, "code": {code}, "dob": {dob}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	return chatPage(t, client, e.br.URL())
}

func chatPage(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/chat")
	require.NoError(t, err)
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(page)
}

func TestIntegrationAPI(t *testing.T) { eachDB(t, runIntegrationAPI) }

func runIntegrationAPI(t *testing.T, kind string) {
	events := newEventReceiver(t, 2)
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		network := cfg["network"].(map[string]any)
		network["templates"] = map[string]any{"results": "Hi {patient_name}, your lab results from {clinic_name} are ready."}
		network["integrations"] = []any{
			map[string]any{"name": "ehr", "token_sha256": tokenSHA(ehrToken),
				"scopes":     []any{"conversations:write", "messages:write", "conversations:read"},
				"rate_limit": map[string]any{"per_minute": 600, "burst": 100},
				"events": map[string]any{"url": events.srv.URL + "/events", "secret": eventSecret, "include_bodies": true, "standard_webhooks": true,
					"retry_interval": "200ms", "max_retry_interval": "2s"}},
			map[string]any{"name": "reader", "token_sha256": tokenSHA(readerToken), "scopes": []any{"conversations:read"}},
			map[string]any{"name": "limited", "token_sha256": tokenSHA(limitedToken), "scopes": []any{"conversations:read"},
				"rate_limit": map[string]any{"per_minute": 1, "burst": 2}},
		}
	})
	base := e.br.URL()
	ehr := apiClient{t, base, ehrToken}
	reader := apiClient{t, base, readerToken}
	const api = "/_carebridge/api/v1"

	// The OpenAPI document is served without a token.
	doc := apiClient{t, base, ""}.call(http.MethodGet, api+"/openapi.json", "")
	require.Equal(t, http.StatusOK, doc.Status)
	assert.Equal(t, "3.0.3", doc.str("openapi"))
	assert.Contains(t, doc.Body["paths"], api+"/conversations")
	// So is the FHIR CapabilityStatement, which names this binary's version.
	meta := apiClient{t, base, ""}.call(http.MethodGet, "/_carebridge/fhir/metadata", "", "Accept", "application/fhir+json")
	require.Equal(t, http.StatusOK, meta.Status, meta.Raw)
	assert.Equal(t, "application/fhir+json; charset=utf-8", meta.Header.Get("Content-Type"))
	assert.Equal(t, "CapabilityStatement", meta.str("resourceType"))
	assert.Equal(t, "4.0.1", meta.str("fhirVersion"))
	assert.Equal(t, "carebridge", meta.str("software.name"))
	versionOut, err := e.br.Command("--version").Output()
	require.NoError(t, err)
	assert.Contains(t, string(versionOut), "carebridge "+meta.str("software.version")+" (", "the version --version prints")

	start := `{"patient":{"phone":"(555) 123-4567","name":"Jane Doe","birth_date":"1980-02-03","external_id":"MRN-1001"},` +
		`"mode":"sms","template":"results"}`
	// Missing, wrong and out-of-scope tokens: refused, nothing done.
	for _, c := range []struct {
		client apiClient
		status int
		code   string
	}{
		{apiClient{t, base, ""}, http.StatusUnauthorized, "missing_token"},
		{apiClient{t, base, "cbt_not-a-token"}, http.StatusUnauthorized, "invalid_token"},
		{reader, http.StatusForbidden, "insufficient_scope"},
	} {
		a := c.client.call(http.MethodPost, api+"/conversations", start)
		assert.Equal(t, c.status, a.Status, a.Raw)
		assert.Equal(t, c.code, a.errorCode(), a.Raw)
		assert.Contains(t, a.Header.Get("WWW-Authenticate"), "Bearer")
	}
	assert.Empty(t, e.fake.Messages(), "a refused call texts nobody")

	// Malformed and invalid requests.
	for _, c := range []struct {
		body, code, field string
		status            int
	}{
		{`{"patient":`, "malformed_json", "", http.StatusBadRequest},
		{`[1,2]`, "invalid_field", "", http.StatusUnprocessableEntity},
		{`{"patient":{"phone":"+15551234567"},"colour":"red"}`, "invalid_field", "colour", http.StatusUnprocessableEntity},
		{`{"patient":{"phone":"call me maybe"}}`, "invalid_field", "patient.phone", http.StatusUnprocessableEntity},
		{`{"patient":{"phone":"+15551234567"},"mode":"fax"}`, "invalid_field", "mode", http.StatusUnprocessableEntity},
		{`{"patient":{"phone":"+15551234567","birth_date":"03/02/1980"}}`, "invalid_field", "patient.birth_date", http.StatusUnprocessableEntity},
		{`{"patient":{"phone":"+15551234567"},"template":"nope"}`, "invalid_field", "template", http.StatusUnprocessableEntity},
	} {
		a := ehr.call(http.MethodPost, api+"/conversations", c.body)
		assert.Equal(t, c.status, a.Status, "%s: %s", c.body, a.Raw)
		assert.Equal(t, c.code, a.errorCode(), "%s: %s", c.body, a.Raw)
		if c.field != "" {
			assert.Equal(t, c.field, a.str("error.field"), a.Raw)
		}
	}
	assert.Empty(t, e.fake.Messages(), "an invalid request texts nobody")

	// A conversation started with a template, with an Idempotency-Key.
	created := ehr.call(http.MethodPost, api+"/conversations", start, "Idempotency-Key", "start-jane-1")
	require.Equal(t, http.StatusCreated, created.Status, created.Raw)
	convID := created.str("conversation.id")
	require.Regexp(t, `^conv_[0-9a-f]{24}$`, convID)
	assert.Equal(t, true, created.field("created"))
	assert.Equal(t, api+"/conversations/"+convID, created.Header.Get("Location"))
	assert.Equal(t, "+15551234567", created.str("conversation.patient.phone"))
	assert.Equal(t, "Jane Doe", created.str("conversation.patient.name"))
	assert.Equal(t, "MRN-1001", created.str("conversation.patient.external_id"))
	assert.Equal(t, "sms", created.str("conversation.mode"))
	assert.Equal(t, "sms", created.str("message.via"))
	const templated = "Hi Jane Doe, your lab results from Example Clinic are ready."
	sms1, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	assert.Equal(t, templated, sms1.Body)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err, "the staff are invited to the new conversation")
	notice(t, ctx, nurse, "Integration ehr started this conversation")
	notice(t, ctx, nurse, "Integration ehr texted: "+templated)

	// The same key and request: the first answer again, nothing sent twice.
	again := ehr.call(http.MethodPost, api+"/conversations", start, "Idempotency-Key", "start-jane-1")
	assert.Equal(t, http.StatusCreated, again.Status)
	assert.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, created.Header.Get("Location"), again.Header.Get("Location"), "a replay says where, too")
	assert.JSONEq(t, created.Raw, again.Raw)
	// A key sent empty is a mistake, not "no key": refused, nothing done.
	empty := ehr.call(http.MethodPost, api+"/conversations", start, "Idempotency-Key", "")
	assert.Equal(t, http.StatusBadRequest, empty.Status, empty.Raw)
	assert.Equal(t, "invalid_idempotency_key", empty.errorCode())
	// The same key, another request: refused.
	other := ehr.call(http.MethodPost, api+"/conversations", strings.Replace(start, "Jane Doe", "John Doe", 1), "Idempotency-Key", "start-jane-1")
	assert.Equal(t, http.StatusUnprocessableEntity, other.Status)
	assert.Equal(t, "idempotency_key_reused", other.errorCode())
	// The same patient and clinic number without a key: the existing conversation.
	existing := ehr.call(http.MethodPost, api+"/conversations", `{"patient":{"phone":"+1 555 123 4567"}}`)
	assert.Equal(t, http.StatusOK, existing.Status, existing.Raw)
	assert.Equal(t, convID, existing.str("conversation.id"))
	assert.Equal(t, false, existing.field("created"))
	assert.Nil(t, existing.field("message"))
	time.Sleep(500 * time.Millisecond)
	assert.Len(t, e.fake.Messages(), 1, "the replay and the existing conversation texted nothing more")

	// Several systems (or retries without a key) starting the same new patient at once: one
	// conversation, created once.
	var wg sync.WaitGroup
	racing := make([]apiAnswer, 8)
	for i := range racing {
		wg.Go(func() {
			racing[i] = ehr.call(http.MethodPost, api+"/conversations", `{"patient":{"phone":"+15551234570"}}`)
		})
	}
	wg.Wait()
	statuses := map[int]int{}
	for _, a := range racing {
		statuses[a.Status]++
		assert.Equal(t, racing[0].str("conversation.id"), a.str("conversation.id"), a.Raw)
	}
	assert.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusOK: len(racing) - 1}, statuses)

	// Reading it, with the read-only token.
	got := reader.call(http.MethodGet, api+"/conversations/"+convID, "")
	require.Equal(t, http.StatusOK, got.Status, got.Raw)
	assert.Equal(t, "sms", got.str("conversation.mode"))
	assert.Equal(t, false, got.field("conversation.opted_out"))
	assert.Equal(t, false, got.field("conversation.unread.awaiting_staff_reply"))
	lastActivity, err := time.Parse(time.RFC3339Nano, got.str("conversation.last_activity"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), lastActivity, time.Minute)
	assert.Equal(t, http.StatusNotFound, reader.call(http.MethodGet, api+"/conversations/conv_000000000000000000000000", "").Status)
	// …which may not send.
	denied := reader.call(http.MethodPost, api+"/conversations/"+convID+"/messages", `{"text":"hello"}`)
	assert.Equal(t, http.StatusForbidden, denied.Status)

	// The patient replies: a "patient.replied" event (with the text: include_bodies), and
	// the conversation waits for staff.
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Thanks! Are they normal?")
	require.NoError(t, err)
	replied := events.waitFor(ctx, "patient.replied", 1)[0]
	assert.Equal(t, convID, replied["conversation"].(map[string]any)["id"])
	assert.Equal(t, "MRN-1001", replied["conversation"].(map[string]any)["external_id"])
	assert.Equal(t, "Thanks! Are they normal?", replied["data"].(map[string]any)["body"])
	assert.Equal(t, true, ehr.call(http.MethodGet, api+"/conversations/"+convID, "").field("conversation.unread.awaiting_staff_reply"))

	// A secure message in an SMS conversation: the patient gets only an alert with a link.
	const phi = "Your potassium is 5.4, slightly high. Please repeat the test this week."
	before := len(e.fake.Messages())
	sent := ehr.call(http.MethodPost, api+"/conversations/"+convID+"/messages", `{"text":"`+phi+`","secure":true}`, "Idempotency-Key", "msg-1")
	require.Equal(t, http.StatusCreated, sent.Status, sent.Raw)
	msgID := sent.str("message.id")
	assert.Equal(t, api+"/conversations/"+convID+"/messages/"+msgID, sent.Header.Get("Location"))
	assert.Equal(t, "secure", sent.str("message.via"))
	assert.Equal(t, "sent", sent.str("message.state"))
	alert, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == patient && strings.Contains(m.Body, "secure message")
	})
	require.NoError(t, err)
	for _, m := range e.fake.Messages()[before:] {
		assert.NotContains(t, m.Body, "potassium", "a secure message is never texted")
	}
	notice(t, ctx, nurse, "🔒 Integration ehr sent to the secure chat: "+phi)
	assert.Equal(t, 1, int(ehr.call(http.MethodGet, api+"/conversations/"+convID, "").field("conversation.unread.unread_by_patient").(float64)))

	// FHIR: a Communication to the same patient by reference (Patient/<external_id>).
	const fhir = "/_carebridge/fhir/Communication"
	comm := `{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"Patient/MRN-1001"}],` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/communication-category","code":"notification"}]}],` +
		`"payload":[{"contentString":"Your appointment moved to Friday 9:00."}]}`
	posted := ehr.call(http.MethodPost, fhir, comm, "Idempotency-Key", "fhir-1")
	require.Equal(t, http.StatusCreated, posted.Status, posted.Raw)
	commID := posted.str("id")
	require.Regexp(t, `^comm_[0-9a-f]{24}$`, commID)
	assert.Equal(t, fhir+"/"+commID, posted.Header.Get("Location"))
	assert.Equal(t, "in-progress", posted.str("status"))
	assert.Equal(t, "Communication", posted.str("resourceType"))
	assert.NotNil(t, posted.field("category"))
	assert.Contains(t, posted.Header.Get("Content-Type"), "application/fhir+json")
	notice(t, ctx, nurse, "🔒 Integration ehr sent to the secure chat: Your appointment moved to Friday 9:00.")

	// The patient opens the link and reads both: message.read events, states read/completed.
	// The date of birth the EHR gave is asked for with the code.
	page := readSecureChat(t, ctx, e, patient, "1980-02-03", regexp.MustCompile(`https?://\S+/s/[A-Za-z0-9_-]+`).FindString(alert.Body))
	assert.Contains(t, page, "potassium")
	assert.Contains(t, page, "Friday 9:00")
	read := events.waitFor(ctx, "message.read", 1)
	ids := read[0]["data"].(map[string]any)["message_ids"].([]any)
	assert.ElementsMatch(t, []any{msgID, commID}, ids)
	msg := ehr.call(http.MethodGet, api+"/conversations/"+convID+"/messages/"+msgID, "")
	assert.Equal(t, "read", msg.str("message.state"), msg.Raw)
	done := ehr.call(http.MethodGet, fhir+"/"+commID, "")
	require.Equal(t, http.StatusOK, done.Status, done.Raw)
	assert.Equal(t, "completed", done.str("status"))
	assert.NotEmpty(t, done.str("received"))
	assert.Equal(t, "Your appointment moved to Friday 9:00.", done.field("payload").([]any)[0].(map[string]any)["contentString"])

	// FHIR with a contained Patient starts a new conversation; invalid resources get an
	// OperationOutcome that says what and where.
	contained := `{"resourceType":"Communication","status":"in-progress","contained":[{"resourceType":"Patient","id":"p1",` +
		`"identifier":[{"value":"MRN-2002"}],"name":[{"given":["Ana"],"family":"Ruiz"}],"telecom":[{"system":"phone","value":"555-123-4568","use":"mobile"}]}],` +
		`"recipient":[{"reference":"#p1"}],"payload":[{"contentString":"Please call us about your referral."}]}`
	second := ehr.call(http.MethodPost, fhir, contained)
	require.Equal(t, http.StatusCreated, second.Status, second.Raw)
	assert.Equal(t, "in-progress", second.str("status"))
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		return m.To == "+15551234568" && strings.Contains(m.Body, "secure message")
	})
	require.NoError(t, err, "the contained patient gets the alert")
	for _, c := range []struct {
		body, code, expression string
		status                 int
	}{
		{`{"resourceType":"Communication",`, "structure", "", http.StatusBadRequest},
		{`{"resourceType":"Patient","status":"in-progress"}`, "invalid", "resourceType", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","recipient":[{"reference":"Patient/MRN-1001"}],"payload":[{"contentString":"x"}]}`,
			"required", "Communication.status", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"Patient/MRN-1001"}]}`,
			"required", "Communication.payload", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"Patient/unknown"}],"payload":[{"contentString":"x"}]}`,
			"not-found", "Communication.recipient[0]", http.StatusUnprocessableEntity},
		// An empty patient ID must not match the conversations that have none.
		{`{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"Patient/"}],"payload":[{"contentString":"x"}]}`,
			"required", "Communication.recipient[0]", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"in-progress","recipient":[{"identifier":{"value":""}}],"payload":[{"contentString":"x"}]}`,
			"required", "Communication.recipient[0]", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"entered-in-error","recipient":[{"reference":"Patient/MRN-1001"}],"payload":[{"contentString":"x"}]}`,
			"business-rule", "Communication.status", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"in-progress","contained":[{"resourceType":"Patient","id":"p1","birthDate":"1980",` +
			`"telecom":[{"system":"phone","value":"+15551234569"}]}],"recipient":[{"reference":"#p1"}],"payload":[{"contentString":"x"}]}`,
			"value", "Patient.birthDate", http.StatusUnprocessableEntity},
		{`{"resourceType":"Communication","status":"in-progress","contained":[{"resourceType":"Patient","id":"p1"}],` +
			`"recipient":[{"reference":"#p1"}],"payload":[{"contentString":"x"}]}`, "required", "Patient.telecom", http.StatusUnprocessableEntity},
	} {
		a := ehr.call(http.MethodPost, fhir, c.body)
		assert.Equal(t, c.status, a.Status, "%s: %s", c.body, a.Raw)
		code, expr := a.outcome()
		assert.Equal(t, c.code, code, "%s: %s", c.body, a.Raw)
		assert.Equal(t, c.expression, expr, "%s: %s", c.body, a.Raw)
	}
	code, _ := apiClient{t, base, "cbt_wrong"}.call(http.MethodPost, fhir, comm).outcome()
	assert.Equal(t, "login", code, "FHIR errors are OperationOutcomes, also for tokens")
	// An integration reads only its own Communications, and a REST message is none.
	assert.Equal(t, http.StatusNotFound, reader.call(http.MethodGet, fhir+"/"+commID, "").Status)
	assert.Equal(t, http.StatusNotFound, ehr.call(http.MethodGet, fhir+"/"+msgID, "").Status)
	assert.Equal(t, http.StatusNotFound, reader.call(http.MethodGet, api+"/conversations/"+convID+"/messages/"+msgID, "").Status)

	// STOP: an event, and the API no longer texts the patient.
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "STOP")
	require.NoError(t, err)
	optedOut := events.waitFor(ctx, "patient.opted_out", 1)[0]
	assert.Equal(t, convID, optedOut["conversation"].(map[string]any)["id"])
	refused := ehr.call(http.MethodPost, api+"/conversations/"+convID+"/messages", `{"text":"Reminder: fasting from midnight."}`)
	assert.Equal(t, http.StatusConflict, refused.Status, refused.Raw)
	assert.Equal(t, "opted_out", refused.errorCode())

	// Staff close it: an event.
	_, _, err = nurse.Send(ctx, roomID, "!sms close")
	require.NoError(t, err)
	closed := events.waitFor(ctx, "conversation.closed", 1)[0]
	assert.Equal(t, convID, closed["conversation"].(map[string]any)["id"])
	assert.Equal(t, true, ehr.call(http.MethodGet, api+"/conversations/"+convID, "").field("conversation.closed"))

	// The receiver failed twice and then accepted: every event once, in order.
	events.mu.Lock()
	var kinds []string
	seen := map[any]bool{}
	for _, ev := range events.accepted {
		assert.False(t, seen[ev["id"]], "event %v delivered twice", ev["id"])
		seen[ev["id"]] = true
		kinds = append(kinds, ev["type"].(string))
	}
	assert.Equal(t, []string{"patient.replied", "message.read", "patient.opted_out", "conversation.closed"}, kinds)
	assert.Equal(t, len(events.accepted)+events.failed, events.attempts, "failed deliveries, then each event once")
	assert.Equal(t, 2, events.failed, "the receiver failed twice")
	assert.Zero(t, events.badSig)
	events.mu.Unlock()

	// Kept until delivered: an event the receiver cannot take waits through a restart of
	// the bridge, and is delivered once when the receiver is back.
	events.mu.Lock()
	events.down = true
	failedBefore := events.failed
	events.mu.Unlock()
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "START")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		events.mu.Lock()
		defer events.mu.Unlock()
		return events.failed > failedBefore
	}, time.Minute, 50*time.Millisecond, "the opted-in event was tried")
	e.br.Stop()
	e.br.Restart()
	events.mu.Lock()
	events.down = false
	events.mu.Unlock()
	optedIn := events.waitFor(ctx, "patient.opted_in", 1)
	assert.Len(t, optedIn, 1)
	time.Sleep(time.Second)
	assert.Len(t, events.waitFor(ctx, "patient.opted_in", 1), 1, "delivered once")

	// Rate limit: a burst of 2, then 429 with Retry-After.
	limited := apiClient{t, base, limitedToken}
	for i := range 2 {
		assert.Equal(t, http.StatusOK, limited.call(http.MethodGet, api+"/conversations/"+convID, "").Status, "call %d", i+1)
	}
	over := limited.call(http.MethodGet, api+"/conversations/"+convID, "")
	assert.Equal(t, http.StatusTooManyRequests, over.Status)
	assert.Equal(t, "rate_limited", over.errorCode())
	assert.NotEmpty(t, over.Header.Get("Retry-After"))

	// Every call is audited: who, which route, the answer; never a body.
	audit := auditRows(t, e.db, "api call")
	assert.Contains(t, audit, "unauthenticated|refused|POST /_carebridge/api/v1/conversations 401")
	assert.Contains(t, audit, "integration:reader|refused|POST /_carebridge/api/v1/conversations 403")
	assert.Contains(t, audit, "integration:ehr|ok|POST /_carebridge/api/v1/conversations 201")
	assert.Contains(t, audit, "integration:ehr|ok|POST /_carebridge/fhir/Communication 201")
	assert.Contains(t, audit, "integration:limited|refused|GET /_carebridge/api/v1/conversations/{id} 429")
	for _, row := range audit {
		assert.NotContains(t, row, "potassium")
		assert.NotContains(t, row, "5551234567")
	}
	log := e.br.Log()
	for _, secret := range []string{"potassium", "Friday 9:00", "Are they normal", ehrToken, eventSecret, "1980-02-03", "Jane Doe", "Ruiz"} {
		var found []string
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, secret) {
				found = append(found, line)
			}
		}
		if len(found) > 0 {
			t.Errorf("the bridge log holds %q in %d lines, e.g.:\n%s", secret, len(found), strings.Join(found[:min(len(found), 5)], "\n"))
		}
	}
}

// auditRows are the audit log's rows of an event as "actor|outcome|detail".
func auditRows(t *testing.T, spec testenv.DBSpec, event string) []string {
	t.Helper()
	driver, placeholder := "postgres", "$1"
	if spec.Type != "postgres" {
		driver, placeholder = "sqlite3", "?1"
	}
	db, err := sql.Open(driver, spec.URI)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT actor, outcome, detail FROM audit_log WHERE event="+placeholder+" ORDER BY id", event)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var actor, outcome, detail string
		require.NoError(t, rows.Scan(&actor, &outcome, &detail))
		out = append(out, fmt.Sprintf("%s|%s|%s", actor, outcome, detail))
	}
	require.NoError(t, rows.Err())
	return out
}
