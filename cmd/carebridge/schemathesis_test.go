package main

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

const fuzzToken = "cbt_test-fuzz-token-0123456789abcdefghijklmnopqrstu"

// TestAPIUnderSchemathesis lets schemathesis (from PyPI, pinned in
// scripts/install-schemathesis.sh) loose on the running bridge's integration API, with
// the OpenAPI document the bridge serves: valid and invalid calls generated from it, with
// a token of every scope. No answer may be a server error or break the document (status,
// content type, headers, body schema).
//
// One database: it checks the API against its document (TestIntegrationAPI runs the API's
// queries on both), and a run costs about 25 s.
func TestAPIUnderSchemathesis(t *testing.T) { runAPIUnderSchemathesis(t, "sqlite") }

func runAPIUnderSchemathesis(t *testing.T, kind string) {
	st, err := testenv.Schemathesis()
	testenv.RequireDep(t, testenv.DepSchemathesis, err)
	e, _, _, _ := linkedEnv(t, kind, func(cfg map[string]any) {
		network := cfg["network"].(map[string]any)
		network["integrations"] = []any{
			map[string]any{"name": "fuzz", "token_sha256": tokenSHA(fuzzToken),
				"scopes":     []any{"conversations:write", "messages:write", "conversations:read"},
				"rate_limit": map[string]any{"per_minute": 60000, "burst": 10000}},
		}
	})
	base := e.br.URL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, st, "run", base+"/_carebridge/api/v1/openapi.json", "--url", base,
		"--header", "Authorization: Bearer "+fuzzToken,
		"--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method",
		"--max-examples", "20", "--seed", "17", "--workers", "1", "--no-color")
	cmd.Dir = t.TempDir() // its example database (.schemathesis/)
	cmd.Env = append(cmd.Environ(), "SCHEMATHESIS_TELEMETRY=false")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("schemathesis (%s):\n%s", time.Since(start).Round(time.Second), out)
	require.NoError(t, err, "schemathesis found failures (above)")
	assert.NotContains(t, string(out), "No operations", "schemathesis tested the API's operations")

	// The bridge is still well after it.
	resp, err := http.Get(base + "/_carebridge/fhir/metadata")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.False(t, strings.Contains(e.br.Log(), `"level":"panic"`), "no panic in the bridge log")
}
