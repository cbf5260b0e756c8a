package integration

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/progver"
)

// release is a tagged build's version, made as cmd/carebridge makes it.
var release = progver.ProgramVersion{Name: "carebridge", BaseVersion: "1.4.0"}.
	Init("v1.4.0", "1673eecb2f0a5d8e9c4b7a6f3e2d1c0b9a8f7e6d", "2026-03-02T09:00:00Z")

// fhirDateTime is FHIR R4's dateTime: a year, year-month, date, or a full time with a zone.
var fhirDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)

// getMetadata serves GET /_carebridge/fhir/metadata through the API's own routes,
// without a token, and decodes the answer as generic JSON (what a FHIR client sees).
func getMetadata(t *testing.T) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	mux := http.NewServeMux()
	NewServer(Options{Log: zerolog.Nop(), Software: release}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, FHIRPrefix+"/metadata", nil))
	var cs map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cs), rec.Body.String())
	return rec, cs
}

func TestMetadataIsServedWithoutAToken(t *testing.T) {
	rec, cs := getMetadata(t)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/fhir+json; charset=utf-8", rec.Header().Get("Content-Type"))
	assert.Equal(t, "CapabilityStatement", cs["resourceType"])
}

// TestMetadataIsAnR4CapabilityStatement checks what FHIR R4 requires of a
// CapabilityStatement (cardinalities, value sets, invariants cpb-1, cpb-2, cpb-9, cpb-15)
// and that it says what carebridge serves: Communication, create and read, JSON, bearer
// tokens.
func TestMetadataIsAnR4CapabilityStatement(t *testing.T) {
	_, cs := getMetadata(t)

	// Required elements (1..1, 1..*) and their bindings.
	assert.Contains(t, []any{"draft", "active", "retired", "unknown"}, cs["status"])
	assert.Equal(t, "active", cs["status"])
	require.IsType(t, "", cs["date"])
	assert.Regexp(t, fhirDateTime, cs["date"])
	date, err := time.Parse(time.RFC3339, cs["date"].(string))
	require.NoError(t, err)
	assert.False(t, date.IsZero())
	assert.Equal(t, "instance", cs["kind"])
	assert.Equal(t, "4.0.1", cs["fhirVersion"])
	assert.Equal(t, []any{"json"}, cs["format"])
	if name, ok := cs["name"].(string); ok {
		assert.Regexp(t, `^[A-Z]([A-Za-z0-9_]){0,254}$`, name, "cpb-0: a name usable as an identifier")
	}

	// cpb-2 and cpb-15: an instance has implementation (with its description); software
	// has its name, and here the version.
	impl, ok := cs["implementation"].(map[string]any)
	require.True(t, ok, "cpb-15: kind instance needs implementation")
	assert.NotEmpty(t, impl["description"])
	software, ok := cs["software"].(map[string]any)
	require.True(t, ok)
	assert.Equal(t, "carebridge", software["name"])
	assert.Equal(t, "v1.4.0", software["version"], "the tag, as --version prints it")
	assert.Equal(t, "2026-03-02T09:00:00Z", software["releaseDate"], "a release's build time")
	assert.Regexp(t, fhirDateTime, software["releaseDate"])
	assert.Equal(t, "2026-03-02T09:00:00Z", cs["date"], "published with the build")

	// cpb-1: rest, messaging or document. One rest, as a server.
	rest, ok := cs["rest"].([]any)
	require.True(t, ok, "cpb-1")
	require.Len(t, rest, 1)
	server := rest[0].(map[string]any)
	assert.Equal(t, "server", server["mode"])

	security := server["security"].(map[string]any)
	assert.Equal(t, false, security["cors"])
	assert.Contains(t, security["description"], "Authorization: Bearer")
	assert.Contains(t, security["description"], "messages:write")
	assert.Equal(t, []any{map[string]any{"text": "Bearer token"}}, security["service"])

	// cpb-9: each resource once. Only Communication, create and read.
	resources := server["resource"].([]any)
	require.Len(t, resources, 1)
	comm := resources[0].(map[string]any)
	assert.Equal(t, "Communication", comm["type"])
	var codes []string
	restful := map[string]bool{"read": true, "vread": true, "update": true, "patch": true, "delete": true,
		"history-instance": true, "history-type": true, "create": true, "search-type": true}
	for _, i := range comm["interaction"].([]any) {
		code := i.(map[string]any)["code"].(string)
		assert.True(t, restful[code], "%s is a type-restful-interaction code", code)
		codes = append(codes, code)
	}
	assert.Equal(t, []string{"create", "read"}, codes)
	assert.NotContains(t, comm, "searchParam", "carebridge answers no search")
	assert.Contains(t, []any{"no-version", "versioned", "versioned-update"}, comm["versioning"])
	assert.Contains(t, []any{"not-supported", "modified-since", "not-match", "full-support"}, comm["conditionalRead"])
	assert.Contains(t, []any{"not-supported", "single", "multiple"}, comm["conditionalDelete"])
	assert.Equal(t, false, comm["updateCreate"])
	assert.Equal(t, false, comm["conditionalCreate"])
}

// TestMetadataNamesOnlyRoutesThatExist: the statement's resources and interactions are
// exactly what the API mounts: each listed interaction of each listed type has its own
// route, and every other RESTful interaction, of a listed type or another, falls through
// to the "not supported" answer.
func TestMetadataNamesOnlyRoutesThatExist(t *testing.T) {
	mux := http.NewServeMux()
	NewServer(Options{Log: zerolog.Nop(), Software: release}).Register(mux)
	fallback := FHIRPrefix + "/"
	// R4's type-restful and instance interactions as a request (search-type by GET only,
	// as carebridge would serve it).
	requests := map[string]func(typ string) *http.Request{
		"read": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodGet, FHIRPrefix+"/"+typ+"/x1", nil)
		},
		"vread": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodGet, FHIRPrefix+"/"+typ+"/x1/_history/1", nil)
		},
		"update": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodPut, FHIRPrefix+"/"+typ+"/x1", nil)
		},
		"patch": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodPatch, FHIRPrefix+"/"+typ+"/x1", nil)
		},
		"delete": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodDelete, FHIRPrefix+"/"+typ+"/x1", nil)
		},
		"history-instance": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodGet, FHIRPrefix+"/"+typ+"/x1/_history", nil)
		},
		"history-type": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodGet, FHIRPrefix+"/"+typ+"/_history", nil)
		},
		"create": func(typ string) *http.Request { return httptest.NewRequest(http.MethodPost, FHIRPrefix+"/"+typ, nil) },
		"search-type": func(typ string) *http.Request {
			return httptest.NewRequest(http.MethodGet, FHIRPrefix+"/"+typ+"?_id=x1", nil)
		},
	}
	_, cs := getMetadata(t)
	listed := map[string]map[string]bool{}
	for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		res := r.(map[string]any)
		typ := res["type"].(string)
		listed[typ] = map[string]bool{}
		for _, i := range res["interaction"].([]any) {
			code := i.(map[string]any)["code"].(string)
			require.Contains(t, requests, code, "%s %s is an R4 interaction", typ, code)
			listed[typ][code] = true
		}
	}
	require.NotEmpty(t, listed)
	for _, typ := range []string{"Communication", "Patient", "Observation"} {
		for code, request := range requests {
			_, pattern := mux.Handler(request(typ))
			switch {
			case code == "history-type" && listed[typ]["read"]:
				// GET /Communication/_history reaches the read route: "_history" is no
				// FHIR id ([A-Za-z0-9-.]{1,64}), so read answers it not-found.
				_, read := mux.Handler(requests["read"](typ))
				assert.Equal(t, read, pattern)
			case listed[typ][code]:
				assert.NotEqual(t, fallback, pattern, "the statement lists %s %s: it is served", typ, code)
			default:
				assert.Equal(t, fallback, pattern, "the statement does not list %s %s: it is not served", typ, code)
			}
		}
	}
	_, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, FHIRPrefix+"/metadata", nil))
	assert.Equal(t, "GET "+FHIRPrefix+"/metadata", pattern)
}
