package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/internal/admin"
	"github.com/carebridge/carebridge/internal/testenv"
)

// The audit subcommands' exit codes (internal/admin): 1 the chain is broken or the export
// failed, 2 wrong arguments, config or database.
const (
	exitFailed = 1
	exitUsage  = 2
)

// TestAuditCommands runs the real system, once per database: a conversation switched to
// secure mode writes audit rows; the built binary verifies the chain while the bridge
// runs, exports it as JSON lines and CSV (and records each export in the log), then
// finds the row changed behind its back.
func TestAuditCommands(t *testing.T) { eachDB(t, runAuditCommands) }

func runAuditCommands(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Hi, could you send me my lab results?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	db, err := dbutil.NewWithDialect(e.db.URI, e.db.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	// Secure, back to SMS, secure again: each switch is an audit row.
	// One at a time: bridgev2 may run commands concurrently, and "secure" twice in a row
	// is refused ("already in secure mode"), not audited.
	switches := func(rows []admin.AuditRecord) (n int) {
		for _, r := range rows {
			if r.Event == "mode switched" {
				n++
			}
		}
		return n
	}
	var rows []admin.AuditRecord
	for i, mode := range []string{"secure", "plain", "secure"} {
		_, _, err = nurse.Send(ctx, roomID, "!sms "+mode)
		require.NoError(t, err)
		for rows = readAuditRows(t, db); switches(rows) < i+1; rows = readAuditRows(t, db) {
			require.NoError(t, ctx.Err(), "switch %d is audited: %d rows", i+1, len(rows))
			time.Sleep(100 * time.Millisecond)
		}
	}
	assert.Equal(t, "login added", rows[0].Event, "linking the clinic number is the first audit row")
	assert.Equal(t, "@admin:"+e.hs.ServerName(), rows[0].Actor)
	switched := -1 // the switch back to SMS
	for i, r := range rows {
		if r.Event == "mode switched" && r.Detail == "sms" {
			switched = i
		}
	}
	require.Positive(t, switched, "switching back to SMS is audited after the first switch")
	n, last := len(rows), rows[len(rows)-1]

	// verify, while the bridge keeps the database open.
	stdout, stderr, code := runCarebridge(t, e.br, "audit", "verify", "-c", e.br.ConfigPath())
	require.Equal(t, 0, code, stderr)
	t.Logf("[%s] %s", kind, strings.SplitN(stdout, "\n", 2)[0])
	assert.Contains(t, stdout, fmt.Sprintf("audit log intact: %d rows, newest row %d at %s, head hash %s\n",
		n, last.ID, parsedTime(t, last).Format(time.RFC3339), last.Hash))
	assert.Contains(t, stdout, "keep `carebridge audit head` outside the database and pass it back with --expect ID:HASH")
	for _, r := range rows {
		assert.Equal(t, "k1", r.MACKey, "row %d (%s) is keyed with the current key", r.ID, r.Event)
	}

	since := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)

	// JSON lines on stdout: every row, oldest first, as stored.
	stdout, stderr, code = runCarebridge(t, e.br, "audit", "export", "-c", e.br.ConfigPath(), "--since", since, "--format", "jsonl")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, fmt.Sprintf("Exported %d rows (jsonl)", n))
	var exported []admin.AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var fields map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &fields), line)
		assert.Len(t, fields, 11, line)
		var r admin.AuditRecord
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		exported = append(exported, r)
	}
	require.Equal(t, rows, exported)
	assert.NotContains(t, stdout, "lab results", "no message body in the audit log")

	// CSV to a file: the same rows, then the jsonl export's own audit row.
	out := filepath.Join(t.TempDir(), "audit.csv")
	_, stderr, code = runCarebridge(t, e.br, "audit", "export", "-c", e.br.ConfigPath(), "--since", since, "--format", "csv", "--output", out)
	require.Equal(t, 0, code, stderr)
	info, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	f, err := os.Open(out)
	require.NoError(t, err)
	records, err := csv.NewReader(f).ReadAll()
	_ = f.Close()
	require.NoError(t, err)
	require.Equal(t, []string{"id", "time", "actor", "login_id", "portal_id", "event", "outcome", "detail", "prev_hash", "hash", "mac_key"}, records[0])
	require.Len(t, records, n+2, "header, the rows, and the first export's row")
	for i, rec := range records[1 : n+1] {
		assert.Equal(t, rows[i].Fields(), rec)
	}
	first := records[n+1]
	assert.Equal(t, "audit exported", first[5])
	assert.True(t, strings.HasPrefix(first[2], "system:cli:"), first[2])
	assert.Equal(t, "ok", first[6])
	assert.Equal(t, fmt.Sprintf("jsonl since %s, %d rows", since, n), first[7])

	// The CSV export is recorded after it, and the chain still holds.
	after := readAuditRows(t, db)
	require.Len(t, after, n+2)
	assert.Equal(t, "audit exported", after[n+1].Event)
	assert.Equal(t, fmt.Sprintf("csv since %s, %d rows", since, n+1), after[n+1].Detail)
	stdout, stderr, code = runCarebridge(t, e.br, "audit", "verify", "-c", e.br.ConfigPath())
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, fmt.Sprintf("audit log intact: %d rows", n+2))

	// An earlier export is never overwritten.
	_, stderr, code = runCarebridge(t, e.br, "audit", "export", "-c", e.br.ConfigPath(), "--since", since, "--format", "csv", "--output", out)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "already exists")

	// Someone with database access hides the switch back to SMS: verify names the row.
	_, err = db.Exec(ctx, "UPDATE audit_log SET detail='secure' WHERE id=$1", rows[switched].ID)
	require.ErrorContains(t, err, "audit_log is append-only", "the trigger refuses the change")
	dropAuditGuards(t, db)
	_, err = db.Exec(ctx, "UPDATE audit_log SET detail='secure' WHERE id=$1", rows[switched].ID)
	require.NoError(t, err)
	stdout, stderr, code = runCarebridge(t, e.br, "audit", "verify", "-c", e.br.ConfigPath())
	assert.Equal(t, 1, code, stderr)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, fmt.Sprintf("audit log chain is broken: row %d was changed", rows[switched].ID))
	assert.Contains(t, stderr, fmt.Sprintf("Intact before it: %d rows, up to row %d.", switched, rows[switched-1].ID))

	stdout, stderr, code = runCarebridge(t, e.br, "audit", "verify", "-c", filepath.Join(t.TempDir(), "nope.yaml"))
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "failed to read config")
}

// parsedTime is the time of an exported row.
func parsedTime(t *testing.T, r admin.AuditRecord) time.Time {
	at, err := time.Parse(time.RFC3339, r.Time)
	require.NoError(t, err)
	return at
}

// readAuditRows reads the table directly, formatted as the export should write it.
func readAuditRows(t *testing.T, db *dbutil.Database) []admin.AuditRecord {
	res, err := db.Query(context.Background(), "SELECT id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key FROM audit_log ORDER BY id")
	require.NoError(t, err)
	defer res.Close()
	var rows []admin.AuditRecord
	for res.Next() {
		var r admin.AuditRecord
		var at int64
		require.NoError(t, res.Scan(&r.ID, &at, &r.Actor, &r.LoginID, &r.PortalID, &r.Event, &r.Outcome, &r.Detail, &r.PrevHash, &r.Hash, &r.MACKey))
		r.Time = time.UnixMilli(at).UTC().Format("2006-01-02T15:04:05.000Z")
		rows = append(rows, r)
	}
	require.NoError(t, res.Err())
	return rows
}

// runCarebridge runs the built binary and returns its output and exit code.
func runCarebridge(t *testing.T, br *testenv.Bridge, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := br.Command(args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.String(), errOut.String(), exitErr.ExitCode()
	}
	require.NoError(t, err, "carebridge %v", args)
	return out.String(), errOut.String(), 0
}
