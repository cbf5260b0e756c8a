package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// TestOtherMethodsAreAnswered405WithAllow: a method the API does not serve at a path it
// does serve is answered 405 with Allow (RFC 9110 section 15.5.6), as a REST error or a FHIR
// OperationOutcome; a path it does not serve at all stays 404.
func TestOtherMethodsAreAnswered405WithAllow(t *testing.T) {
	mux := http.NewServeMux()
	NewServer(Options{Log: zerolog.Nop(), Software: release}).Register(mux)
	for _, c := range []struct {
		method, path string
		status       int
		allow, body  string
	}{
		{"TRACE", RESTPrefix + "/conversations", http.StatusMethodNotAllowed, "POST", `"code":"method_not_allowed"`},
		{http.MethodDelete, RESTPrefix + "/conversations/conv_4f1c2a9be0d3c7a1e2f3a4b5", http.StatusMethodNotAllowed, "GET, HEAD", `"code":"method_not_allowed"`},
		{http.MethodPut, RESTPrefix + "/conversations/conv_4f1c2a9be0d3c7a1e2f3a4b5/messages", http.StatusMethodNotAllowed, "POST", `"code":"method_not_allowed"`},
		{http.MethodPost, RESTPrefix + "/openapi.json", http.StatusMethodNotAllowed, "GET, HEAD", `"code":"method_not_allowed"`},
		{http.MethodGet, RESTPrefix + "/patients", http.StatusNotFound, "", `"code":"not_found"`},
		{"TRACE", FHIRPrefix + "/metadata", http.StatusMethodNotAllowed, "GET, HEAD", `"resourceType":"OperationOutcome"`},
		{http.MethodPut, FHIRPrefix + "/Communication/comm_1d0c7e9a", http.StatusMethodNotAllowed, "GET, HEAD", `"code":"not-supported"`},
		{http.MethodGet, FHIRPrefix + "/Communication", http.StatusMethodNotAllowed, "POST", `"code":"not-supported"`},
		{http.MethodGet, FHIRPrefix + "/Patient/MRN-1001", http.StatusNotFound, "", `"code":"not-supported"`},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		assert.Equal(t, c.status, rec.Code, "%s %s: %s", c.method, c.path, rec.Body)
		assert.Equal(t, c.allow, rec.Header().Get("Allow"), "%s %s", c.method, c.path)
		assert.Contains(t, rec.Body.String(), c.body, "%s %s", c.method, c.path)
	}
}

// TestAnEmptyIdempotencyKeyIsRefused: an Idempotency-Key header sent empty, or twice, is
// a caller's mistake, not "no key": 400, and the request does not run.
func TestAnEmptyIdempotencyKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	spec := testenv.NewDatabase(t, testenv.DatabaseKinds[0])
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	require.NoError(t, db.Upgrade(ctx))
	const token = "cbt_test-writer-token-0123456789abcdefghijklmnopq"
	sum := sha256.Sum256([]byte(token))
	mux := http.NewServeMux()
	NewServer(Options{DB: db, Log: zerolog.Nop(), Backend: nil, Integrations: []config.IntegrationConfig{{
		Name: "ehr", TokenSHA256: hex.EncodeToString(sum[:]), Scopes: []string{config.ScopeConversationsWrite},
		RateLimit: config.RateLimitConfig{PerMinute: 600, Burst: 100}}}}).Register(mux)
	for name, keys := range map[string][]string{"empty": {""}, "twice": {"key-1", "key-2"}} {
		r := httptest.NewRequest(http.MethodPost, RESTPrefix+"/conversations", strings.NewReader(`{"patient":{"phone":"+15551234567"}}`))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header["Idempotency-Key"] = keys
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r) // a nil Backend: running the request would panic
		assert.Equal(t, http.StatusBadRequest, w.Code, "%s: %s", name, w.Body)
		assert.Contains(t, w.Body.String(), `"code":"invalid_idempotency_key"`, name)
	}
}
