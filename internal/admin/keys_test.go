package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	bridgedb "maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/integration"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/securechat"
)

var (
	rotationKey1 = bytes.Repeat([]byte{0x11}, 32)
	rotationKey2 = bytes.Repeat([]byte{0x22}, 32)
)

// rotationFixture is a bridge database as an older key left it: secure messages and a
// linked number's auth token sealed with k1, and a number linked by a version that kept
// its token in clear.
type rotationFixture struct {
	spec  testenv.DBSpec
	db    *database.Database
	texts map[int64]string // message ID → its text
	files map[int64][]byte // message ID → its file, for files
	api   []string         // the integration API's sealed items, in rotation order
}

var rotationPortals = []string{"15551234567", "15557654321", "15559876543"}

const (
	rotationLogin  = "15550001111"
	rotationLegacy = "15550002222"
	rotationToken  = "8c1f0e2d3b4a59687766554433221100"
	legacyToken    = "00112233445566778899aabbccddeeff"
)

func newRotationFixture(t *testing.T, kind string, messages int) *rotationFixture {
	ctx := context.Background()
	f := &rotationFixture{spec: testenv.NewDatabase(t, kind), texts: map[int64]string{}, files: map[int64][]byte{}}
	raw, err := dbutil.NewWithDialect(f.spec.URI, f.spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	// bridgev2's own tables, as the bridge makes them on its first start.
	bdb := bridgedb.New("sms", bridgedb.MetaTypes{UserLogin: func() any { return &bridge.UserLoginMetadata{} }}, raw)
	require.NoError(t, bdb.Upgrade(ctx))
	f.db = database.New(raw, zerolog.Nop())
	require.NoError(t, f.db.Upgrade(ctx))

	k1, err := securechat.NewKeyring("k1", rotationKey1)
	require.NoError(t, err)
	// The bridge audited with k1 before the rotation.
	f.db.Audit.SetKeys(k1)
	require.NoError(t, f.db.Audit.Append(ctx, &database.AuditEntry{Actor: database.StaffActor("@admin:clinic.example"), LoginID: rotationLogin,
		Event: "login added", Outcome: "ok"}))
	sealed := &bridge.UserLoginMetadata{AccountSID: "AC0123456789abcdef0123456789abcdef", Phone: "+15550001111", PhoneSID: "PN01"}
	require.NoError(t, sealed.SetAuthToken(k1, rotationLogin, rotationToken))
	legacy := &bridge.UserLoginMetadata{AccountSID: "AC0123456789abcdef0123456789abcdef", PlainAuthToken: legacyToken,
		Phone: "+15550002222", PhoneSID: "PN02"}
	require.NoError(t, bdb.User.Insert(ctx, &bridgedb.User{BridgeID: "sms", MXID: "@admin:clinic.example"}))
	for id, meta := range map[string]*bridge.UserLoginMetadata{rotationLogin: sealed, rotationLegacy: legacy} {
		require.NoError(t, bdb.UserLogin.Insert(ctx, &bridgedb.UserLogin{BridgeID: "sms", UserMXID: "@admin:clinic.example",
			ID: networkid.UserLoginID(id), RemoteName: meta.Phone, Metadata: meta}))
	}

	require.NoError(t, f.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for i := range messages {
			portal := rotationPortals[i%len(rotationPortals)]
			text := fmt.Sprintf("Message %d: your potassium was 4.%d mmol/L, no change to your dose.", i, i%10)
			m := &database.SecureMessage{LoginID: rotationLogin, PortalID: portal, SenderName: "Nurse Kim", Kind: database.SecureText}
			var file []byte
			if i%10 == 0 {
				text = fmt.Sprintf("lab-report-%d.pdf", i)
				file = fmt.Appendf(nil, "%%PDF-1.4 lab report %d", i)
				m.Kind, m.ContentType, m.Size = database.SecureFile, "application/pdf", int64(len(file))
				if _, m.Data, err = k1.Seal(file, securechat.MessageAdditional(rotationLogin, portal, "data")); err != nil {
					return err
				}
			}
			if m.KeyID, m.Body, err = k1.Seal([]byte(text), securechat.MessageAdditional(rotationLogin, portal, "body")); err != nil {
				return err
			}
			if err = f.db.Secure.Insert(ctx, m); err != nil {
				return err
			}
			f.texts[m.ID] = text
			if file != nil {
				f.files[m.ID] = file
			}
		}
		return nil
	}))
	// What the integration API seals: a FHIR Communication's text, a queued event and an
	// answer kept for an Idempotency-Key.
	for _, item := range []struct {
		kind database.APISealedKind
		id   string
		text string
	}{
		{database.APISealedCommunication, "msg_rotation", `{"resourceType":"Communication","payload":[{"contentString":"Your results are in."}]}`},
		{database.APISealedEvent, "evt_rotation", `{"type":"patient.replied","data":{"body":"thanks"}}`},
		{database.APISealedAnswer, "ehr", `{"conversation":{"id":"conv_rotation"}}`},
	} {
		s := &database.APISealed{Kind: item.kind, ID: item.id, ID2: map[bool]string{true: "key-1"}[item.kind == database.APISealedAnswer]}
		keyID, sealed, err := k1.Seal([]byte(item.text), integration.SealedAdditional(s))
		require.NoError(t, err)
		q := f.db.Integration()
		switch item.kind {
		case database.APISealedCommunication:
			err = q.InsertMessage(ctx, &database.APIMessage{ID: item.id, Integration: "ehr", ConversationID: "conv_rotation",
				LoginID: rotationLogin, PortalID: rotationPortals[0], Via: database.ModeSecure, KeyID: keyID, Resource: sealed})
		case database.APISealedEvent:
			err = q.InsertEvent(ctx, &database.APIEvent{EventID: item.id, Integration: "ehr", Type: "patient.replied", KeyID: keyID, Payload: sealed})
		case database.APISealedAnswer:
			_, _, err = q.ClaimIdempotency(ctx, "ehr", "key-1", "hash")
			require.NoError(t, err)
			err = q.FinishIdempotency(ctx, "ehr", "key-1", 201, keyID, sealed)
		}
		require.NoError(t, err)
		f.api = append(f.api, item.text)
	}
	return f
}

// checkAPIOpen opens the integration API's sealed items with keys; it returns how many
// each key seals.
func (f *rotationFixture) checkAPIOpen(t *testing.T, keys *securechat.Keyring) map[string]int {
	t.Helper()
	byKey := map[string]int{}
	var texts []string
	for _, kind := range database.APISealedKinds {
		batch, err := f.db.Integration().SealedBatch(context.Background(), kind, "", "", 100)
		require.NoError(t, err)
		for _, s := range batch {
			plain, err := keys.Open(s.KeyID, s.Data, integration.SealedAdditional(s))
			require.NoError(t, err, "%s %s sealed with %s", kind, s.ID, s.KeyID)
			texts = append(texts, string(plain))
			byKey[s.KeyID]++
		}
	}
	require.Equal(t, f.api, texts)
	return byKey
}

// checkAllOpen opens every message with keys and compares it with what was sealed; it
// returns how many messages each key seals.
func (f *rotationFixture) checkAllOpen(t *testing.T, keys *securechat.Keyring) map[string]int {
	t.Helper()
	ctx := context.Background()
	byKey := map[string]int{}
	seen := 0
	for _, portal := range rotationPortals {
		rows, err := f.db.Secure.List(ctx, rotationLogin, portal, 0, 10000)
		require.NoError(t, err)
		for _, row := range rows {
			seen++
			byKey[row.KeyID]++
			body, err := keys.Open(row.KeyID, row.Body, securechat.MessageAdditional(rotationLogin, portal, "body"))
			require.NoError(t, err, "message %d sealed with %s", row.ID, row.KeyID)
			require.Equal(t, f.texts[row.ID], string(body))
			if want, ok := f.files[row.ID]; ok {
				full, err := f.db.Secure.Get(ctx, row.ID, rotationLogin, portal)
				require.NoError(t, err)
				data, err := keys.Open(full.KeyID, full.Data, securechat.MessageAdditional(rotationLogin, portal, "data"))
				require.NoError(t, err, "file of message %d", row.ID)
				require.Equal(t, want, data)
			}
		}
	}
	require.Equal(t, len(f.texts), seen, "no message lost")
	return byKey
}

// loginTokens opens the linked numbers' auth tokens with keys, as the bridge does at start.
func (f *rotationFixture) loginTokens(t *testing.T, keys *securechat.Keyring) map[string]string {
	t.Helper()
	rows, err := f.db.LoginMetadata(context.Background())
	require.NoError(t, err)
	tokens := map[string]string{}
	for _, row := range rows {
		var meta bridge.UserLoginMetadata
		require.NoError(t, json.Unmarshal([]byte(row.Metadata), &meta))
		token, err := meta.AuthToken(keys, networkid.UserLoginID(row.LoginID))
		require.NoError(t, err, row.LoginID)
		tokens[row.LoginID] = token
	}
	return tokens
}

// TestKeysRotateResumes: 1,000 messages sealed with k1; k2 becomes current; a rotation
// stopped halfway leaves a mix that all opens; run again, it finishes, and everything
// (messages, files, auth tokens) opens with k2 alone, unchanged.
func TestKeysRotateResumes(t *testing.T) { eachDB(t, runKeysRotateResumes) }

func runKeysRotateResumes(t *testing.T, kind string) {
	f := newRotationFixture(t, kind, 1000)
	ring, err := securechat.NewKeyringOf("k2", map[string][]byte{"k1": rotationKey1, "k2": rotationKey2})
	require.NoError(t, err)
	// Two follow-ups waiting for their day, sealed with k1.
	k1Only, err := securechat.NewKeyring("k1", rotationKey1)
	require.NoError(t, err)
	followUps := map[int64]string{}
	for _, text := range []string{"How is the ankle today?", "Reminder: fasting blood test tomorrow"} {
		additional := securechat.MessageAdditional(rotationLogin, rotationPortals[0], securechat.ScheduledPart)
		keyID, sealed, err := k1Only.Seal([]byte(text), additional)
		require.NoError(t, err)
		m := &database.ScheduledMessage{LoginID: rotationLogin, PortalID: rotationPortals[0], CreatedBy: "@nurse:clinic.example",
			CreatedAt: time.Now(), SendAt: time.Now().Add(72 * time.Hour), KeyID: keyID, Body: sealed}
		require.NoError(t, f.db.Scheduled().Insert(context.Background(), m))
		followUps[m.ID] = text
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	batches := 0
	first, err := rotateKeys(ctx, f.db, ring, securechat.RotateOptions{BatchSize: 100, Progress: func(string, *securechat.RotateResult) {
		if batches++; batches == 5 {
			stop() // as Ctrl-C would, after the fifth commit
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, map[string]int{"k1": 500}, first.messages.Resealed)
	assert.Equal(t, map[string]int{"k1": 500}, first.messages.Left)
	assert.Nil(t, first.tokens, "stopped before the auth tokens")
	assert.Equal(t, map[string]int{"k1": 500, "k2": 500}, f.checkAllOpen(t, ring), "half and half, all readable")

	second, err := rotateKeys(context.Background(), f.db, ring, securechat.RotateOptions{BatchSize: 100})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"k1": 500}, second.messages.Resealed, "resumed with what was left")
	assert.Empty(t, second.messages.Left)
	assert.Empty(t, second.messages.Unopened)
	assert.Equal(t, map[string]int{"k1": 1, "": 1}, second.tokens.Resealed, "the sealed token and the one in clear")
	assert.Zero(t, second.left())

	onlyK2, err := securechat.NewKeyring("k2", rotationKey2)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"k2": 1000}, f.checkAllOpen(t, onlyK2), "k1 is no longer needed")
	assert.Equal(t, map[string]string{rotationLogin: rotationToken, rotationLegacy: legacyToken}, f.loginTokens(t, onlyK2))
	rows, err := f.db.LoginMetadata(context.Background())
	require.NoError(t, err)
	for _, row := range rows {
		assert.NotContains(t, row.Metadata, `"auth_token":`, "no token left in clear")
		assert.NotContains(t, row.Metadata, legacyToken)
		assert.Contains(t, row.Metadata, `"phone_sid":`, "the other fields are kept")
	}

	assert.Equal(t, map[string]int{"k1": 2}, second.scheduled, "the pending follow-ups")
	for id, text := range followUps {
		m, err := f.db.Scheduled().Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, "k2", m.KeyID)
		plain, err := onlyK2.Open(m.KeyID, m.Body, securechat.MessageAdditional(rotationLogin, rotationPortals[0], securechat.ScheduledPart))
		require.NoError(t, err)
		assert.Equal(t, text, string(plain))
	}

	third, err := rotateKeys(context.Background(), f.db, ring, securechat.RotateOptions{})
	require.NoError(t, err)
	assert.Zero(t, third.total(), "a finished rotation has nothing more to do")
}

func TestKeysCommandArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "config.yaml")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"keys"}, "usage:"},
		{"unknown subcommand", []string{"keys", "rewrap"}, `unknown subcommand "rewrap"`},
		{"stray argument", []string{"keys", "status", "k2"}, `unexpected argument "k2"`},
		{"zero batch", []string{"keys", "rotate", "--batch", "0", "-c", missing}, "--batch must be at least 1"},
		{"missing config", []string{"keys", "rotate", "-c", missing}, "failed to read config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code, handled := Run(context.Background(), tc.args, &stdout, &stderr)
			require.True(t, handled)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, stderr.String(), tc.want)
		})
	}
}

// TestKeysCommands runs the built binary on a database an older key left: status, a
// rotation limited to part of the messages, the rest, and status again; k2 comes from
// its environment variable, as a clinic that keeps keys out of the file has it.
func TestKeysCommands(t *testing.T) { eachDB(t, runKeysCommands) }

func runKeysCommands(t *testing.T, kind string) {
	bin := testenv.BridgeBinary(t)
	f := newRotationFixture(t, kind, 250)
	dir := t.TempDir()
	writeConfig := func(k2 string) string {
		path := filepath.Join(dir, "config.yaml")
		cfg := fmt.Sprintf("database:\n    type: %s\n    uri: %q\nnetwork:\n    secure_chat:\n        keys:\n"+
			"            k1: %s\n            k2: %s\n        current_key: k2\n",
			f.spec.Type, f.spec.URI, base64.StdEncoding.EncodeToString(rotationKey1), k2)
		require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
		return path
	}
	keyEnv := []string{"CAREBRIDGE_SECURE_CHAT_KEY_K2=" + base64.StdEncoding.EncodeToString(rotationKey2)}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), keyEnv...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return stdout.String(), stderr.String(), exitErr.ExitCode()
		}
		require.NoError(t, err)
		return stdout.String(), stderr.String(), 0
	}

	path := writeConfig("env")
	stdout, stderr, code := run("keys", "status", "-c", path)
	require.Equal(t, 0, code, stderr)
	t.Logf("[%s] keys status before:\n%s", kind, stdout)
	assert.Contains(t, stdout, "Keys of network.secure_chat.keys (current: k2):")
	assert.Regexp(t, `k1 +250 secure messages, 1 Twilio auth token, 0 scheduled follow-ups, 3 integration API items\n`, stdout)
	assert.Regexp(t, `k2 +0 secure messages, 0 Twilio auth tokens, 0 scheduled follow-ups, 0 integration API items +\(current: seals new data\)`, stdout)
	assert.Regexp(t, `\(in clear\) +1 Twilio auth token, kept by an older version`, stdout)
	assert.Contains(t, stdout, "k1 still seals stored data: run `carebridge keys rotate -c "+path+"`")
	assert.Contains(t, stdout, "Audit log rows by the key that keyed them: k1: 1\n")

	stdout, stderr, code = run("keys", "rotate", "-c", path, "--batch", "60", "--limit", "150")
	assert.Equal(t, keysExitLeft, code, "stopped with messages left\n%s%s", stdout, stderr)
	t.Logf("[%s] keys rotate --limit 150:\n%s", kind, stdout)
	assert.Contains(t, stdout, "  k1: 60 re-sealed\n  k1: 120 re-sealed\n  k1: 150 re-sealed\n")
	assert.Contains(t, stdout, "Secure messages re-sealed with k2: 150 (k1: 150)")
	assert.Contains(t, stdout, "Twilio auth tokens re-sealed with k2: 2 (in clear: 1, k1: 1)")
	assert.Contains(t, stdout, "Secure messages not yet sealed with k2: 100 (k1: 100)")
	assert.Contains(t, stdout, "Integration API items (FHIR texts, events, kept answers) re-sealed with k2: 3 (k1: 3)")

	stdout, stderr, code = run("keys", "rotate", "-c", path)
	require.Equal(t, 0, code, "%s%s", stdout, stderr)
	assert.Contains(t, stdout, "Secure messages re-sealed with k2: 100 (k1: 100)")
	assert.Contains(t, stdout, "Twilio auth tokens re-sealed with k2: 0\n")
	assert.Contains(t, stdout, "Every secure message is sealed with k2.")

	stdout, stderr, code = run("keys", "status", "-c", path)
	require.Equal(t, 0, code, stderr)
	t.Logf("[%s] keys status after:\n%s", kind, stdout)
	assert.Regexp(t, `k1 +0 secure messages, 0 Twilio auth tokens, 0 scheduled follow-ups, 0 integration API items\n`, stdout)
	assert.Regexp(t, `k2 +250 secure messages, 2 Twilio auth tokens, 0 scheduled follow-ups, 3 integration API items`, stdout)
	assert.Contains(t, stdout, "k1 seals no stored message or token any more. Keep it in the ring for "+
		"network.secure_chat.link_lifetime (72h0m0s) after the rotation")
	assert.Contains(t, stdout, "until the dates of birth recorded before the rotation have been re-set")
	assert.NotContains(t, stdout, "(in clear)")
	assert.Contains(t, stdout, "Audit log rows by the key that keyed them: k1: 1, k2: 2\n")
	assert.Contains(t, stdout, "But k1 keyed 1 row of the audit log, which verify only with it: keep it in the ring")

	// The audit chain runs from k1's row through the rotations' k2 rows and verifies.
	stdout, stderr, code = run("audit", "verify", "-c", path)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "audit log intact: 3 rows")
	head, stderr, code := run("audit", "head", "-c", path)
	require.Equal(t, 0, code, stderr)
	stdout, stderr, code = run("audit", "verify", "-c", path, "--expect", strings.TrimSpace(head))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "The log holds the kept head "+strings.TrimSpace(head))

	onlyK2, err := securechat.NewKeyring("k2", rotationKey2)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"k2": 250}, f.checkAllOpen(t, onlyK2))
	assert.Equal(t, map[string]int{"k2": 3}, f.checkAPIOpen(t, onlyK2))
	assert.Equal(t, map[string]string{rotationLogin: rotationToken, rotationLegacy: legacyToken}, f.loginTokens(t, onlyK2))

	audit, err := f.db.Audit.Find(context.Background(), "", "", "keys rotated")
	require.NoError(t, err)
	require.Len(t, audit, 2, "each run is audited")
	assert.Equal(t, database.ActorSystem, audit[0].Actor.Kind)
	assert.True(t, strings.HasPrefix(audit[0].Actor.Name, "cli:"), audit[0].Actor.String())
	assert.Equal(t, []string{"incomplete", "155 rows to k2"}, []string{string(audit[0].Outcome), audit[0].Detail})
	assert.Equal(t, []string{"ok", "100 rows to k2"}, []string{string(audit[1].Outcome), audit[1].Detail})

	// A key the bridge has not generated yet: nothing is touched, and the fix is named.
	path, keyEnv = writeConfig("generate"), nil
	_, stderr, code = run("keys", "rotate", "-c", path)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `network.secure_chat.keys.k2 is still "generate"`)
}

// eachDB runs a test once per database (subtests sqlite and postgres).
func eachDB(t *testing.T, run func(t *testing.T, kind string)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { run(t, kind) })
	}
}
