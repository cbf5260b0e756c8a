package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// scopeBackend is the bridge side, reduced to the database: conversations are rows.
type scopeBackend struct{ db *database.Database }

func (b scopeBackend) ClinicNumbers() map[string]string {
	return map[string]string{"+15550001111": "15550001111", "+15550002222": "15550002222"}
}
func (b scopeBackend) NormalizePhone(raw string) (string, error) { return raw, nil }
func (b scopeBackend) OpenConversation(ctx context.Context, _ database.AuditActor, loginID, patient string) (*database.Conversation, bool, error) {
	existing, err := b.db.Conversation.Get(ctx, loginID, patient[1:])
	if err != nil || existing != nil {
		return existing, false, err
	}
	conv, err := b.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: loginID, PortalID: patient[1:],
		ClinicPhone: "+" + loginID, PatientPhone: patient, Mode: database.ModeSMS})
	return conv, true, err
}
func (b scopeBackend) SetPatientName(ctx context.Context, _ database.AuditActor, conv *database.Conversation, name string) error {
	return b.db.Conversation.SetPatientName(ctx, conv.PatientPhone, name)
}
func (b scopeBackend) SetDOB(context.Context, database.AuditActor, *database.Conversation, string) error {
	return nil
}
func (b scopeBackend) SetSecure(context.Context, database.AuditActor, *database.Conversation) error {
	return nil
}
func (b scopeBackend) CheckTemplate(string) error { return nil }
func (b scopeBackend) Template(context.Context, database.AuditActor, *database.Conversation, string) (string, error) {
	return "", nil
}
func (b scopeBackend) Send(context.Context, database.AuditActor, *database.Conversation, string, bool) (*Sent, error) {
	return &Sent{}, nil
}
func (b scopeBackend) LastActivity(context.Context, *database.Conversation) time.Time {
	return time.Time{}
}
func (b scopeBackend) UnreadByPatient(context.Context, *database.Conversation) int { return 0 }

// TestIntegrationOnOneNumberNeitherRenamesNorReadsOtherNumbersPatients: an integration
// restricted to clinic number A may not rename a patient who also talks to number B (the
// name shows in all their rooms), and does not read a name given on B.
func TestIntegrationOnOneNumberNeitherRenamesNorReadsOtherNumbersPatients(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))
			backend := scopeBackend{db}
			// Staff of clinic number B named the patient.
			convB, _, err := backend.OpenConversation(ctx, database.AuditActor{}, "15550002222", "+15551234567")
			require.NoError(t, err)
			require.NoError(t, db.Conversation.SetPatientName(ctx, convB.PatientPhone, "Jane Doe"))

			token := func(name string) (string, config.IntegrationConfig, string) {
				tok := "cbt_" + name + "-token-0123456789abcdefghijklmnopqrstuvwxyz"
				sum := sha256.Sum256([]byte(tok))
				return tok, config.IntegrationConfig{Name: name, TokenSHA256: hex.EncodeToString(sum[:]),
					Scopes:    []string{config.ScopeConversationsWrite, config.ScopeConversationsRead},
					RateLimit: config.RateLimitConfig{PerMinute: 600, Burst: 100}}, name
			}
			labTok, lab, _ := token("lab")
			lab.Numbers = []string{"+15550001111"}
			ehrTok, ehr, _ := token("ehr")
			s := NewServer(Options{DB: db, Backend: backend, Log: zerolog.Nop(), Integrations: []config.IntegrationConfig{lab, ehr}})
			mux := http.NewServeMux()
			s.Register(mux)
			do := func(method, path, tok, body string) (int, map[string]any) {
				r := httptest.NewRequest(method, path, strings.NewReader(body))
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, r)
				var out map[string]any
				_ = json.Unmarshal(w.Body.Bytes(), &out)
				return w.Code, out
			}

			status, out := do(http.MethodPost, RESTPrefix+"/conversations", labTok,
				`{"patient":{"phone":"+15551234567","name":"Jane Q. Public"}}`)
			assert.Equal(t, http.StatusForbidden, status, out)
			assert.Equal(t, "patient.name", out["error"].(map[string]any)["field"], out)
			convA, err := db.Conversation.Get(ctx, "15550001111", "15551234567")
			require.NoError(t, err)
			assert.Nil(t, convA, "nothing was created")
			name, err := db.Conversation.GetPatientName(ctx, "+15551234567")
			require.NoError(t, err)
			assert.Equal(t, "Jane Doe", name, "the name staff gave is unchanged")

			status, out = do(http.MethodPost, RESTPrefix+"/conversations", labTok, `{"patient":{"phone":"+15551234567"}}`)
			require.Equal(t, http.StatusCreated, status, out)
			view, _ := out["conversation"].(map[string]any)
			require.NotNil(t, view, out)
			assert.Empty(t, view["patient"].(map[string]any)["name"], "a name given on another number is not the lab's to read")

			status, out = do(http.MethodGet, RESTPrefix+"/conversations/"+view["id"].(string), ehrTok, "")
			require.Equal(t, http.StatusOK, status, out)
			conv, _ := out["conversation"].(map[string]any)
			require.NotNil(t, conv, out)
			patient, _ := conv["patient"].(map[string]any)
			require.NotNil(t, patient, out)
			assert.Equal(t, "Jane Doe", patient["name"], "an integration on every number reads it")
		})
	}
}
