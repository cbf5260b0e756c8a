package integration

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// gcmSealer seals what the API keeps (answers for Idempotency-Key, FHIR resources) with
// AES-256-GCM, as the bridge's key ring does.
type gcmSealer struct{ aead cipher.AEAD }

func newGCMSealer() gcmSealer {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	return gcmSealer{aead}
}

func (g gcmSealer) Seal(plaintext, additional []byte) (string, []byte, error) {
	nonce := make([]byte, g.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return "k1", g.aead.Seal(nonce, nonce, plaintext, additional), nil
}

func (g gcmSealer) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	if keyID != "k1" || len(sealed) < g.aead.NonceSize() {
		return nil, errors.New("no such key")
	}
	return g.aead.Open(nil, sealed[:g.aead.NonceSize()], sealed[g.aead.NonceSize():], additional)
}

// fuzzBackend is scopeBackend with the bridge's rule for numbers: E.164 only.
type fuzzBackend struct{ scopeBackend }

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

func (fuzzBackend) NormalizePhone(raw string) (string, error) {
	if !e164.MatchString(raw) {
		return "", errors.New("not a phone number")
	}
	return raw, nil
}

// FuzzAPIRequests sends what an EHR could send to the REST and FHIR endpoints, through
// the real routes (token, scope, body, Idempotency-Key, parsing, audit) on SQLite: no
// request panics or is answered 5xx, and every answer is one JSON value.
func FuzzAPIRequests(f *testing.F) {
	ctx := context.Background()
	spec := testenv.NewDatabase(f, "sqlite")
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	if err = db.Upgrade(ctx); err != nil {
		f.Fatal(err)
	}
	const token = "cbt_fuzz-ehr-token-0123456789abcdefghijklmnopqrstuvw"
	sum := sha256.Sum256([]byte(token))
	s := NewServer(Options{DB: db, Backend: fuzzBackend{scopeBackend{db}}, Keys: newGCMSealer(), Log: zerolog.Nop(),
		Integrations: []config.IntegrationConfig{{Name: "ehr", TokenSHA256: hex.EncodeToString(sum[:]),
			Scopes:    []string{config.ScopeConversationsWrite, config.ScopeConversationsRead, config.ScopeMessagesWrite},
			RateLimit: config.RateLimitConfig{PerMinute: 1 << 30, Burst: 1 << 30}}}})
	mux := http.NewServeMux()
	s.Register(mux)
	do := func(method, path, key, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	w := do(http.MethodPost, RESTPrefix+"/conversations", "", `{"clinic_number":"+15550001111","patient":{"phone":"+15551234567"}}`)
	var created conversationResponse
	if err = json.Unmarshal(w.Body.Bytes(), &created); err != nil || created.Conversation == nil {
		f.Fatalf("no conversation to send to: %d %s", w.Code, w.Body)
	}
	routes := []struct{ method, path string }{
		{http.MethodPost, RESTPrefix + "/conversations"},
		{http.MethodPost, RESTPrefix + "/conversations/" + created.Conversation.ID + "/messages"},
		{http.MethodPost, FHIRPrefix + "/Communication"},
		{http.MethodGet, RESTPrefix + "/conversations/"},
		{http.MethodGet, FHIRPrefix + "/Communication/"},
	}

	f.Add(uint8(0), "", `{"clinic_number":"+15550001111","patient":{"phone":"+15557654321","name":"Jane Doe","birth_date":"1980-02-03","external_id":"MRN-1"},"mode":"secure","message":"Hi"}`)
	f.Add(uint8(0), "k-1", `{"clinic_number":"+15550002222","patient":{"phone":"+15557654321"},"template":"results"}`)
	f.Add(uint8(0), "", `{"patient":{"phone":"+15557654321","birth_date":"1980-02-30"},"message":"a","template":"b"}`)
	f.Add(uint8(1), "k-2", `{"text":"Your results are ready.","secure":true}`)
	f.Add(uint8(1), "", `{"text":"","template":""}`)
	f.Add(uint8(2), "k-3", `{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"#p"}],`+
		`"sender":{"identifier":{"value":"+15550001111"}},`+
		`"contained":[{"resourceType":"Patient","id":"p","telecom":[{"system":"phone","value":"+15551234567"}],`+
		`"birthDate":"1980-02-03","name":[{"text":"Jane Doe"}]}],"payload":[{"contentString":"Your results are ready."}]}`)
	f.Add(uint8(2), "", `{"resourceType":"Communication","recipient":[{"reference":"Patient/x"}]}`)
	f.Add(uint8(3), "", created.Conversation.ID)
	f.Add(uint8(4), "", "comm_000000000000000000000000")
	f.Add(uint8(1), "ünïcode key", `{"text":"x"} {"text":"y"}`)
	f.Fuzz(func(t *testing.T, route uint8, key, body string) {
		rt := routes[int(route)%len(routes)]
		path := rt.path
		if rt.method == http.MethodGet {
			if _, err := url.ParseRequestURI(path + body); err != nil || strings.ContainsAny(body, "/?#% ") || body == "." || body == ".." {
				// Not one path segment as a client sends it: clients remove dot segments
				// (RFC 3986), and http.ServeMux answers them with a redirect to the clean path.
				return
			}
			path += body // the ID an integration asks for
			body = ""
		}
		w := do(rt.method, path, key, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s (key %q) %q: %d %s", rt.method, path, key, body, w.Code, w.Body)
		}
		var answer any
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s %s %q: the answer %q is not JSON: %v", rt.method, path, body, w.Body, err)
		}
		if w.Code >= 400 && fmt.Sprint(answer) == "" {
			t.Fatalf("%s %s %q: an empty refusal", rt.method, path, body)
		}
	})
}
