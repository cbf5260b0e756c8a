package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSign(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"patient.replied"}`)
	at := time.Unix(1796160000, 0)
	got := Sign("0123456789abcdef0123456789abcdef", at, body)
	mac := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	mac.Write([]byte("1796160000."))
	mac.Write(body)
	assert.Equal(t, "t=1796160000,v1="+hex.EncodeToString(mac.Sum(nil)), got)
	assert.NotEqual(t, got, Sign("another secret of thirty-two chars!", at, body))
	assert.NotEqual(t, got, Sign("0123456789abcdef0123456789abcdef", at.Add(time.Second), body), "the time is signed")
}

func TestIdempotencyKeys(t *testing.T) {
	for key, ok := range map[string]bool{
		"0b1c2d3e-aaaa-4bbb-8ccc-000000000001": true,
		"order/42:reminder":                    true,
		"has space":                            false,
		"tab\tkey":                             false,
		"ünïcode":                              false,
		strings.Repeat("k", 255):               true,
		strings.Repeat("k", 256):               false,
		"":                                     false,
	} {
		assert.Equal(t, ok, validIdempotencyKey(key), "%q", key)
	}
}

func TestDecodeStrict(t *testing.T) {
	var req messageRequest
	for body, want := range map[string]string{
		``:                              "malformed_json",
		`{"text":`:                      "malformed_json",
		`{"text":"a"} {"text":"b"}`:     "malformed_json",
		`{"text":5}`:                    "invalid_field",
		`{"text":"a","secure":"yes"}`:   "invalid_field",
		`{"text":"a","attachment":"x"}`: "invalid_field",
	} {
		err := decodeStrict([]byte(body), &req)
		var e *Error
		require.True(t, errors.As(err, &e), "%q: %v", body, err)
		assert.Equal(t, want, e.Code, "%q", body)
		assert.Less(t, e.Status, 500)
	}
	require.NoError(t, decodeStrict([]byte(`{"text":"Your results are ready.","secure":true}`), &req))
	assert.True(t, req.Secure)
}

func TestOutcome(t *testing.T) {
	out := outcomeOf(fhirIssue("required", "Communication.payload", "Communication.payload is required"))
	data, err := json.Marshal(out)
	require.NoError(t, err)
	assert.JSONEq(t, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required",
		"diagnostics":"Communication.payload is required","expression":["Communication.payload"]}]}`, string(data))
	assert.Equal(t, "login", outcomeOf(apiError(401, "invalid_token", "x"))["issue"].([]any)[0].(map[string]any)["code"])
}

// FuzzCommunication feeds what an EHR could send to the FHIR endpoint's parsing: it
// never panics, and what it refuses is a 4xx OperationOutcome issue.
func FuzzCommunication(f *testing.F) {
	f.Add(`{"resourceType":"Communication","status":"in-progress","recipient":[{"reference":"#p"}],` +
		`"contained":[{"resourceType":"Patient","id":"p","telecom":[{"system":"phone","value":"+15551234567"}]}],` +
		`"payload":[{"contentString":"Your results are ready."}]}`)
	f.Add(`{"resourceType":"Communication","payload":[{"contentAttachment":{}}]}`)
	f.Add(`{"contained":[1,2,3],"recipient":[{"reference":"#1"}]}`)
	f.Add(`{"payload":[{"contentString":""}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var comm fhirCommunication
		if err := json.Unmarshal([]byte(body), &comm); err != nil {
			_ = jsonProblem(err)
			return
		}
		check := func(err error) {
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
				t.Fatalf("not a 4xx issue: %v", err)
			}
		}
		text, err := communicationText(&comm)
		check(err)
		if err == nil && (strings.TrimSpace(text) == "" || len([]rune(text)) > maxMessageLength) {
			t.Fatalf("accepted a text of %d characters", len(text))
		}
		for _, r := range comm.Recipient {
			if strings.HasPrefix(r.Reference, "#") {
				_, err = containedPatient(comm.Contained, r.Reference[1:])
				check(err)
			}
		}
	})
}
