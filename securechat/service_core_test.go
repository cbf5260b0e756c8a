package securechat

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
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

type coreBackend struct {
	mu    sync.Mutex
	down  bool // the room cannot be reached
	texts []string
	msgs  []*Message
	reads []*Message
}

func (b *coreBackend) SendSMS(_ context.Context, _ *database.Conversation, text string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.texts = append(b.texts, text)
	return nil
}

func (b *coreBackend) PatientMessage(_ context.Context, _ *database.Conversation, msg *Message, _ []byte) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return "", errors.New("homeserver unreachable")
	}
	b.msgs = append(b.msgs, msg)
	return "$event", nil
}

func (b *coreBackend) PatientRead(_ context.Context, _ *database.Conversation, newest *Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, newest)
	return nil
}

// testNurse is the staff member of the tests.
var testNurse = database.StaffActor("@nurse:clinic.example")

var codePattern = regexp.MustCompile(`\b(\d{6})\b`)

func (b *coreBackend) lastCode(t *testing.T) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.texts)
	m := codePattern.FindStringSubmatch(b.texts[len(b.texts)-1])
	require.NotNil(t, m, "the last text carries a code")
	return m[1]
}

type coreFixture struct {
	svc     *Service
	backend *coreBackend
	conv    *database.Conversation
	clock   time.Time
	uri     string // the database's connection string
}

func newCoreFixture(t *testing.T, kind string) *coreFixture {
	spec := testenv.NewDatabase(t, kind)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	require.NoError(t, db.Upgrade(context.Background()))
	cfg := &config.SecureChatConfig{DefaultMode: "secure", EncryptionKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		LinkLifetime: 72 * time.Hour, CodeLifetime: 10 * time.Minute, MaxWrongCodes: 5, CodesPerHour: 5,
		SessionIdle: 15 * time.Minute, SessionMax: 12 * time.Hour, AlertQuietPeriod: 15 * time.Minute, Language: "en", MaxUploadMB: 20}
	svc, err := NewService(db, cfg, "Riverside Clinic", "https://clinic.example")
	require.NoError(t, err)
	f := &coreFixture{svc: svc, backend: &coreBackend{}, clock: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), uri: spec.URI}
	svc.Backend = f.backend
	svc.Now = func() time.Time { return f.clock }
	f.conv, err = db.Conversation.GetOrCreate(context.Background(), &database.Conversation{LoginID: "15550001111",
		PortalID: "15551234567", ClinicPhone: "+15550001111", PatientPhone: "+15551234567", Mode: database.ModeSecure})
	require.NoError(t, err)
	return f
}

func (f *coreFixture) link(t *testing.T) string {
	url, err := f.svc.IssueLink(context.Background(), f.conv, testNurse)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(url, "https://clinic.example/s/"))
	return strings.TrimPrefix(url, "https://clinic.example/s/")
}

func eachCoreDB(t *testing.T, fn func(t *testing.T, f *coreFixture)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { fn(t, newCoreFixture(t, kind)) })
	}
}

func TestCoreLinkAndCode(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		assert.GreaterOrEqual(t, len(token), 24, "at least 144 bits")
		_, err := f.svc.CheckLink(ctx, token)
		require.NoError(t, err)
		assert.Empty(t, f.backend.texts, "checking a link sends nothing")
		_, err = f.svc.CheckLink(ctx, token+"x")
		assert.ErrorIs(t, err, ErrLinkUnknown)

		_, _, err = f.svc.Verify(ctx, token, "123456", "")
		assert.ErrorIs(t, err, ErrNoCode)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		code := f.backend.lastCode(t)
		assert.Equal(t, "Riverside Clinic: your code is "+code+". It expires in 10 minutes. Do not share it with anyone.\n\n@clinic.example #"+code,
			f.backend.texts[0], "the origin-bound line last")
		session, _, err := f.svc.Verify(ctx, token, code, "")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, len(session), 40)
		_, _, err = f.svc.Verify(ctx, token, code, "")
		assert.ErrorIs(t, err, ErrWrongCode, "a code works once")

		// A code after its lifetime fails.
		require.NoError(t, f.svc.SendCode(ctx, token, "es"))
		assert.Contains(t, f.backend.texts[1], "su código es")
		f.clock = f.clock.Add(10 * time.Minute)
		_, _, err = f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		assert.ErrorIs(t, err, ErrCodeExpired)

		// Links expire after 72 h.
		f.clock = f.clock.Add(72 * time.Hour)
		_, err = f.svc.CheckLink(ctx, token)
		assert.ErrorIs(t, err, ErrLinkExpired)
	})
}

func TestCoreLockoutSurvivesNewCode(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		for i := range 4 {
			_, _, err := f.svc.Verify(ctx, token, "000000", "")
			require.ErrorIs(t, err, ErrWrongCode, "try %d", i+1)
			if i == 1 {
				require.NoError(t, f.svc.SendCode(ctx, token, "en"), "a new code mid-way")
			}
		}
		_, _, err := f.svc.Verify(ctx, token, "000000", "")
		require.ErrorIs(t, err, ErrLinkLocked, "the fifth wrong code locks")
		err = f.svc.SendCode(ctx, token, "en")
		assert.ErrorIs(t, err, ErrLinkLocked, "a locked link sends no code")
		_, _, err = f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		assert.ErrorIs(t, err, ErrLinkLocked, "even the right code fails while locked")

		require.NoError(t, f.svc.Unlock(ctx, f.conv, testNurse))
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		_, _, err = f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		assert.NoError(t, err)
		entries, err := f.svc.DB.Audit.Find(ctx, f.conv.LoginID, f.conv.PortalID, "code locked")
		require.NoError(t, err)
		assert.Len(t, entries, 1)
	})
}

func TestCoreRateLimit(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		for range 5 {
			require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		}
		assert.ErrorIs(t, f.svc.SendCode(ctx, token, "en"), ErrRateLimited)
		other := f.link(t)
		assert.ErrorIs(t, f.svc.SendCode(ctx, other, "en"), ErrRateLimited, "the limit also counts per number")
		f.clock = f.clock.Add(61 * time.Minute)
		assert.NoError(t, f.svc.SendCode(ctx, token, "en"))
		assert.Len(t, f.backend.texts, 6)
	})
}

func TestCoreDOBAndSessions(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		require.NoError(t, f.svc.SetDOB(ctx, f.conv, "1980-02-03", testNurse))
		assert.ErrorIs(t, f.svc.SetDOB(ctx, f.conv, "03/02/1980", testNurse), ErrInvalidDOB)
		conv, err := f.svc.DB.Conversation.Get(ctx, f.conv.LoginID, f.conv.PortalID)
		require.NoError(t, err)
		assert.NotContains(t, conv.DOBHash, "1980", "only a keyed hash is kept")
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		code := f.backend.lastCode(t)
		_, _, err = f.svc.Verify(ctx, token, code, "1980-03-02")
		assert.ErrorIs(t, err, ErrWrongCode)
		session, _, err := f.svc.Verify(ctx, token, code, "1980-02-03")
		require.NoError(t, err)

		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)
		assert.Len(t, sess.CSRF, 32)
		f.clock = f.clock.Add(14 * time.Minute)
		_, err = f.svc.Session(ctx, session)
		require.NoError(t, err, "activity within the idle time keeps the session")
		f.clock = f.clock.Add(15 * time.Minute)
		_, err = f.svc.Session(ctx, session)
		assert.ErrorIs(t, err, ErrSessionEnded, "15 minutes idle ends it")

		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err = f.svc.Verify(ctx, token, f.backend.lastCode(t), "1980-02-03")
		require.NoError(t, err)
		for range 60 {
			f.clock = f.clock.Add(14 * time.Minute)
			if _, err = f.svc.Session(ctx, session); err != nil {
				break
			}
		}
		assert.ErrorIs(t, err, ErrSessionEnded, "12 hours at most")

		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err = f.svc.Verify(ctx, token, f.backend.lastCode(t), "1980-02-03")
		require.NoError(t, err)
		sess, err = f.svc.Session(ctx, session)
		require.NoError(t, err)
		require.NoError(t, f.svc.SignOut(ctx, sess))
		_, err = f.svc.Session(ctx, session)
		assert.ErrorIs(t, err, ErrSessionEnded)

		require.NoError(t, f.svc.Revoke(ctx, f.conv, testNurse))
		_, err = f.svc.CheckLink(ctx, token)
		assert.ErrorIs(t, err, ErrLinkRevoked)
	})
}

// TestCoreStaffMessageDeliveredTwiceIsKeptOnce: the homeserver delivers a staff message
// again after the bridge stopped before answering: it is kept (and audited) once.
func TestCoreStaffMessageDeliveredTwiceIsKeptOnce(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		audited := func() (n int) {
			require.NoError(t, f.svc.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit_log WHERE event=$1`,
				string(database.EventSecureMessageStored)).Scan(&n))
			return n
		}
		first, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Your results are in.", "", nil, "$once")
		require.NoError(t, err)
		assert.False(t, first.KeptBefore)
		again, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Your results are in.", "", nil, "$once")
		require.NoError(t, err)
		assert.True(t, again.KeptBefore)
		assert.Equal(t, first.ID, again.ID)
		assert.Equal(t, "Your results are in.", again.Text)
		other, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Your results are in.", "", nil, "$twice")
		require.NoError(t, err)
		assert.NotEqual(t, first.ID, other.ID, "the same words from another event are another message")
		rows, err := f.svc.DB.Secure.List(ctx, f.conv.LoginID, f.conv.PortalID, 0, 10)
		require.NoError(t, err)
		assert.Len(t, rows, 2)
		assert.Equal(t, 2, audited())
	})
}

func TestCoreMessagesSealedAtRest(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		staff, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Your potassium is 5.9; please come in.", "", nil, "$staff")
		require.NoError(t, err)
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err := f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		require.NoError(t, err)
		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)
		photo := []byte("\x89PNG\r\n\x1a\n fake but sealed")
		sent, err := f.svc.AddPatientMessage(ctx, sess, database.SecureImage, "rash.png", "image/png", photo)
		require.NoError(t, err)
		assert.Equal(t, "$event", sent.EventID)

		rows, err := f.svc.DB.Secure.List(ctx, f.conv.LoginID, f.conv.PortalID, 0, 10)
		require.NoError(t, err)
		for _, row := range rows {
			assert.NotContains(t, string(row.Body), "potassium", "bodies are sealed at rest")
			assert.NotContains(t, string(row.Body), "rash", "file names are sealed at rest")
		}
		full, err := f.svc.DB.Secure.Get(ctx, sent.ID, f.conv.LoginID, f.conv.PortalID)
		require.NoError(t, err)
		assert.NotContains(t, string(full.Data), "fake but sealed", "files are sealed at rest")

		msgs, err := f.svc.Messages(ctx, sess, 0)
		require.NoError(t, err)
		require.Len(t, msgs, 2)
		assert.Equal(t, "Your potassium is 5.9; please come in.", msgs[0].Text)
		assert.Equal(t, "Nurse Kim", msgs[0].SenderName)
		assert.True(t, msgs[1].FromPatient)
		require.Len(t, f.backend.reads, 1, "reading tells the bridge once")
		assert.Equal(t, staff.ID, f.backend.reads[0].ID)
		_, err = f.svc.Messages(ctx, sess, 0)
		require.NoError(t, err)
		assert.Len(t, f.backend.reads, 1, "no second receipt for the same messages")

		_, data, err := f.svc.File(ctx, sess, sent.ID)
		require.NoError(t, err)
		assert.Equal(t, photo, data)
		_, _, err = f.svc.File(ctx, sess, staff.ID)
		assert.ErrorIs(t, err, ErrNotFound, "a text is not a file")
		n, err := f.svc.DB.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Greater(t, n, 5, "every access is audited")
	})
}

func TestCoreRedeliverPatientMessages(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err := f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		require.NoError(t, err)
		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)

		f.backend.down = true
		_, err = f.svc.AddPatientMessage(ctx, sess, database.SecureText, "first", "", nil)
		require.Error(t, err, "stored, but the room is down")
		_, err = f.svc.AddPatientMessage(ctx, sess, database.SecureImage, "second.png", "image/png", []byte("png bytes"))
		require.Error(t, err)
		f.clock = f.clock.Add(time.Second)
		n, err := f.svc.RedeliverPending(ctx, 0)
		assert.Error(t, err, "still down")
		assert.Zero(t, n)

		f.backend.down = false
		n, err = f.svc.RedeliverPending(ctx, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n, "messages within the grace period are left to their request")
		f.clock = f.clock.Add(2 * time.Minute)
		n, err = f.svc.RedeliverPending(ctx, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		require.Len(t, f.backend.msgs, 2)
		assert.Equal(t, "first", f.backend.msgs[0].Text, "in order")
		assert.Equal(t, "second.png", f.backend.msgs[1].Text)
		n, err = f.svc.RedeliverPending(ctx, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, n, "delivered once")
	})
}
