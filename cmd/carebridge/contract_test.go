package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge"
)

// The integration API's contract is docs/openapi.json (embedded in the binary as
// carebridge.OpenAPI): every call TestIntegrationAPI makes and every answer it gets is
// checked against it with kin-openapi, and so is every event the bridge delivers (the
// document's x-webhooks), so the document cannot drift from the server.

// contract routes requests to the document's operations.
type contract struct {
	api    routers.Router // the paths, on any host
	events routers.Router // x-webhooks' "event", as if it were the path /events
}

var loadedContract = sync.OnceValues(func() (*contract, error) {
	api, err := loadContractDoc(carebridge.OpenAPI, nil)
	if err != nil {
		return nil, err
	}
	events, err := loadContractDoc(carebridge.OpenAPI, func(doc map[string]any) error {
		hooks, _ := doc["x-webhooks"].(map[string]any)
		if hooks["event"] == nil {
			return errors.New("docs/openapi.json has no x-webhooks.event")
		}
		doc["paths"] = map[string]any{"/events": hooks["event"]}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &contract{api: api, events: events}, nil
})

// loadContractDoc loads and validates the document (after edit, if any) and routes its
// paths on any host: the document's server is a placeholder.
func loadContractDoc(raw []byte, edit func(map[string]any) error) (routers.Router, error) {
	if edit != nil {
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, err
		}
		if err := edit(doc); err != nil {
			return nil, err
		}
		var err error
		if raw, err = json.Marshal(doc); err != nil {
			return nil, err
		}
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, err
	}
	if err = doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	doc.Servers = nil
	return gorillamux.NewRouter(doc)
}

func apiContract(t *testing.T) *contract {
	t.Helper()
	c, err := loadedContract()
	require.NoError(t, err, "docs/openapi.json")
	return c
}

// bearerPresent is the document's bearerAuth as a request can satisfy it: an
// Authorization header with a Bearer token (whether the bridge knows it is the server's
// business, answered by a documented 401).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type != "http" || in.SecurityScheme.Scheme != "bearer" {
		return errors.New("only bearer tokens are known")
	}
	if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return errors.New("no bearer token")
	}
	return nil
}

// checkExchange checks a call and its answer against the document: the operation must
// exist, the answer (status, headers, content type, body) must be what it documents,
// and a request the document calls invalid must have been refused with a 4xx.
func (c *contract) checkExchange(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	ctx := context.Background()
	what := req.Method + " " + req.URL.RequestURI()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.api.FindRoute(vreq)
	if err != nil {
		return fmt.Errorf("docs/openapi.json has no operation for %s: %w", what, err)
	}
	var errs []error
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true}}
	if err = openapi3filter.ValidateRequest(ctx, in); err != nil && (status < 400 || status > 499) {
		errs = append(errs, fmt.Errorf("%s is invalid by docs/openapi.json, yet the bridge answered %d:\n%w", what, status, err))
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(respBody)
	if err = openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, fmt.Errorf("the answer to %s (%d) breaks docs/openapi.json:\n%w\nbody: %s", what, status, err, respBody))
	}
	return errors.Join(errs...)
}

// checkEvent checks a delivery the bridge made to an integration's events.url (headers
// and body) against the document's x-webhooks "event".
func (c *contract) checkEvent(req *http.Request, body []byte) error {
	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.URL.Path = "/events"
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := c.events.FindRoute(vreq)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}})
}

// TestContractRefusesARenamedField: the document is strict enough that an answer with a
// field renamed (or added) breaks it, as does an undocumented status or a request it
// calls invalid that the server accepted; the events likewise.
func TestContractRefusesARenamedField(t *testing.T) {
	c := apiContract(t)
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:29331/_carebridge/api/v1/conversations/conv_4f1c2a9be0d3c7a1e2f3a4b5", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer cbt_x")
	header := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	const answer = `{"conversation":{"id":"conv_4f1c2a9be0d3c7a1e2f3a4b5","clinic_number":"+15550001111",` +
		`"patient":{"phone":"+15551234567","external_id":"MRN-1001"},"mode":"sms","opted_out":false,` +
		`"last_activity":"2026-03-02T09:00:00Z","unread":{"awaiting_staff_reply":false,"unread_by_patient":0},` +
		`"urgent":false,"closed":false,"created_at":"2026-03-02T09:00:00Z"}}`
	require.NoError(t, c.checkExchange(req, nil, http.StatusOK, header, []byte(answer)))

	for name, broken := range map[string]string{
		"an optional field renamed": strings.Replace(answer, `"external_id"`, `"externalId"`, 1),
		"a required field renamed":  strings.Replace(answer, `"urgent"`, `"is_urgent"`, 1),
		"a field missing":           strings.Replace(answer, `"closed":false,`, ``, 1),
		"a value out of its enum":   strings.Replace(answer, `"mode":"sms"`, `"mode":"fax"`, 1),
	} {
		assert.ErrorContains(t, c.checkExchange(req, nil, http.StatusOK, header, []byte(broken)), "breaks docs/openapi.json", name)
	}
	assert.ErrorContains(t, c.checkExchange(req, nil, http.StatusTeapot, header, []byte(`{}`)), "status is not supported")
	anonymous := req.Clone(context.Background())
	anonymous.Header.Del("Authorization")
	assert.ErrorContains(t, c.checkExchange(anonymous, nil, http.StatusOK, header, []byte(answer)), "is invalid by docs/openapi.json, yet the bridge answered 200")

	event := func(body string) error {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:29332/events", strings.NewReader(body))
		require.NoError(t, err)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Carebridge-Event-Id", "evt_1d8f3a6c2b9e4f70a5c3d2e1")
		r.Header.Set("Carebridge-Event-Type", "patient.opted_out")
		r.Header.Set("Carebridge-Signature", fmt.Sprintf("t=%d,v1=%064x", time.Now().Unix(), 7))
		return c.checkEvent(r, []byte(body))
	}
	const opted = `{"id":"evt_1d8f3a6c2b9e4f70a5c3d2e1","type":"patient.opted_out","created_at":"2026-03-02T09:00:00Z",` +
		`"integration":"ehr","conversation":{"id":"conv_4f1c2a9be0d3c7a1e2f3a4b5","clinic_number":"+15550001111",` +
		`"patient_phone":"+15551234567"},"data":{}}`
	require.NoError(t, event(opted))
	assert.Error(t, event(strings.Replace(opted, `"patient_phone"`, `"patient_number"`, 1)), "a renamed field in an event")
}
