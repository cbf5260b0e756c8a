package securechat

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// auditTrail lists the conversation's audit events as "event/outcome", oldest first.
func auditTrail(t *testing.T, f *coreFixture) []string {
	rows, err := f.svc.DB.Query(context.Background(),
		"SELECT event, outcome FROM audit_log WHERE login_id=$1 AND portal_id=$2 ORDER BY id", f.conv.LoginID, f.conv.PortalID)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var event, outcome string
		require.NoError(t, rows.Scan(&event, &outcome))
		out = append(out, event+"/"+outcome)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestCoreAuditTrail: each step of a patient's visit leaves its event, in order, and the
// chain verifies.
func TestCoreAuditTrail(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		_, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Results are in.", "", nil, "$s")
		require.NoError(t, err)
		token := f.link(t)
		_, err = f.svc.OpenLink(ctx, token)
		require.NoError(t, err)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		_, _, err = f.svc.Verify(ctx, token, "000000", "")
		if f.backend.lastCode(t) != "000000" {
			require.ErrorIs(t, err, ErrWrongCode)
		}
		session, _, err := f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		require.NoError(t, err)
		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)
		_, err = f.svc.Messages(ctx, sess, 0)
		require.NoError(t, err)
		sent, err := f.svc.AddPatientMessage(ctx, sess, database.SecureFile, "letter.pdf", "application/pdf", []byte("%PDF-1.4"))
		require.NoError(t, err)
		_, _, err = f.svc.File(ctx, sess, sent.ID)
		require.NoError(t, err)
		require.NoError(t, f.svc.SignOut(ctx, sess))
		require.NoError(t, f.svc.Revoke(ctx, f.conv, testNurse))
		_, err = f.svc.OpenLink(ctx, token)
		require.ErrorIs(t, err, ErrLinkRevoked)

		trail := auditTrail(t, f)
		want := []string{"message stored for secure chat/ok", "link issued/ok", "link opened/ok", "code issued/ok", "code sent/ok"}
		if f.backend.lastCode(t) != "000000" {
			want = append(want, "code failed/wrong")
		}
		want = append(want, "code verified/ok", "session started/ok", "messages read/ok", "message sent/ok",
			"attachment downloaded/ok", "session ended/signed out", "link revoked/ok", "link opened/revoked")
		assert.Equal(t, want, trail)
		n, err := f.svc.DB.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(trail), n)
	})
}

// TestCoreAuditFailureUndoesAction: when the audit row cannot be written, the action it
// records does not happen either (same transaction).
func TestCoreAuditFailureUndoesAction(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err := f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		require.NoError(t, err)
		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)
		before := auditTrail(t, f)

		_, err = f.svc.DB.Exec(ctx, "ALTER TABLE audit_log RENAME TO audit_log_away")
		require.NoError(t, err)
		_, err = f.svc.IssueLink(ctx, f.conv, testNurse)
		assert.Error(t, err, "no link without its audit row")
		_, err = f.svc.AddPatientMessage(ctx, sess, database.SecureText, "I feel dizzy", "", nil)
		assert.Error(t, err, "no message without its audit row")
		assert.Error(t, f.svc.SetDOB(ctx, f.conv, "1980-02-29", testNurse))
		assert.Error(t, f.svc.SignOut(ctx, sess))
		_, err = f.svc.Messages(ctx, sess, 0)
		assert.Error(t, err, "nothing is shown without its audit row")
		_, err = f.svc.DB.Exec(ctx, "ALTER TABLE audit_log_away RENAME TO audit_log")
		require.NoError(t, err)

		var links, msgs int
		require.NoError(t, f.svc.DB.QueryRow(ctx, "SELECT COUNT(*) FROM secure_link").Scan(&links))
		require.NoError(t, f.svc.DB.QueryRow(ctx, "SELECT COUNT(*) FROM secure_message").Scan(&msgs))
		assert.Equal(t, 1, links, "only the first link exists")
		assert.Zero(t, msgs)
		conv, err := f.svc.DB.Conversation.Get(ctx, f.conv.LoginID, f.conv.PortalID)
		require.NoError(t, err)
		assert.Empty(t, conv.DOBHash)
		_, err = f.svc.Session(ctx, session)
		assert.NoError(t, err, "the session was not ended")
		assert.Equal(t, before, auditTrail(t, f))
	})
}
