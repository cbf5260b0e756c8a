package main

import (
	"bytes"
	"context"
	"encoding/base64"
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

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/securechat"
)

// dropAuditGuards removes the triggers that refuse UPDATE and DELETE on audit rows, as
// someone who owns the database can.
func dropAuditGuards(t *testing.T, db *dbutil.Database) {
	t.Helper()
	stmts := []string{"DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete"}
	if db.Dialect == dbutil.Postgres {
		stmts = []string{"DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"}
	}
	for _, stmt := range stmts {
		_, err := db.Exec(context.Background(), stmt)
		require.NoError(t, err, stmt)
	}
}

// auditToolFixture is a database holding ten audit rows written as the bridge writes
// them (keyed with the config's current key), and a config file naming it.
type auditToolFixture struct {
	bin, config string
	raw         *dbutil.Database
	db          *database.Database
	keys        *securechat.Keyring
	rows        []*database.AuditEntry
}

func newAuditToolFixture(t *testing.T, kind string) *auditToolFixture {
	ctx := context.Background()
	f := &auditToolFixture{bin: testenv.BridgeBinary(t)}
	spec := testenv.NewDatabase(t, kind)
	var err error
	f.raw, err = dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.raw.Close() })
	f.keys, err = securechat.NewKeyring("k1", rotationKey1)
	require.NoError(t, err)
	f.db = database.New(f.raw, zerolog.Nop())
	f.db.Audit.SetKeys(f.keys)
	require.NoError(t, f.db.Upgrade(ctx))
	f.config = filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf("database:\n    type: %s\n    uri: %q\nnetwork:\n    secure_chat:\n        keys:\n            k1: %s\n        current_key: k1\n",
		spec.Type, spec.URI, base64.StdEncoding.EncodeToString(rotationKey1))
	require.NoError(t, os.WriteFile(f.config, []byte(cfg), 0o600))
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i, ev := range []database.AuditEvent{"mode switched", "link issued", "code sent", "code verified", "messages read",
		"mode switched", "dob recorded", "link revoked", "code unlocked", "session ended"} {
		e := &database.AuditEntry{At: start.Add(time.Duration(i) * time.Minute), Actor: database.StaffActor("@nurse.kim:clinic.example"),
			LoginID: "15550001111", PortalID: "15551234567", Event: ev, Outcome: "ok"}
		require.NoError(t, f.db.Audit.Append(ctx, e))
		f.rows = append(f.rows, e)
	}
	return f
}

func (f *auditToolFixture) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(f.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return out.String(), errOut.String(), exitErr.ExitCode()
	}
	require.NoError(t, err, "carebridge %v", args)
	return out.String(), errOut.String(), 0
}

// TestAuditHeadAndExpect runs the built binary: `audit head` prints ID:HASH; `audit
// verify --expect` holds it; then someone who can write the database deletes row 6 and
// recomputes rows 7-10 with SHA-256 (verify fails), and someone who also has the key
// rewrites history or cuts the log (only --expect fails).
func TestAuditHeadAndExpect(t *testing.T) { eachDB(t, runAuditHeadAndExpect) }

func runAuditHeadAndExpect(t *testing.T, kind string) {
	ctx := context.Background()
	f := newAuditToolFixture(t, kind)
	stdout, stderr, code := f.run(t, "audit", "head", "-c", f.config)
	require.Equal(t, 0, code, stderr)
	head := strings.TrimSpace(stdout)
	assert.Equal(t, fmt.Sprintf("%d:%s\n", f.rows[9].ID, f.rows[9].Hash), stdout, "ID:HASH alone, for a log")
	assert.Empty(t, stderr)
	assert.Equal(t, "k1", f.rows[9].MACKey)

	stdout, stderr, code = f.run(t, "audit", "verify", "-c", f.config, "--expect", head)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "audit log intact: 10 rows")
	assert.Contains(t, stdout, "The log holds the kept head "+head+".")

	_, stderr, code = f.run(t, "audit", "verify", "-c", f.config, "--expect", "10")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `invalid value "10" for flag -expect: "10" is not ID:HASH`)

	// The triggers refuse the change to anyone who has not dropped them first.
	_, err := f.raw.Exec(ctx, "DELETE FROM audit_log WHERE id=$1", f.rows[5].ID)
	require.ErrorContains(t, err, "audit_log is append-only")

	// Row 6 deleted, rows 7-10 recomputed with plain SHA-256: verify fails at row 7.
	dropAuditGuards(t, f.raw)
	_, err = f.raw.Exec(ctx, "DELETE FROM audit_log WHERE id=$1", f.rows[5].ID)
	require.NoError(t, err)
	prev := f.rows[4].Hash
	for _, e := range f.rows[6:] {
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		_, err = f.raw.Exec(ctx, "UPDATE audit_log SET prev_hash=$1, hash=$2 WHERE id=$3", e.PrevHash, e.Hash, e.ID)
		require.NoError(t, err)
		prev = e.Hash
	}
	stdout, stderr, code = f.run(t, "audit", "verify", "-c", f.config)
	assert.Equal(t, exitFailed, code, stdout)
	assert.Contains(t, stderr, "audit log chain is broken: row 7 was changed after it was written")
	assert.Contains(t, stderr, "Intact before it: 5 rows, up to row 5.")
	stdout, stderr, code = f.run(t, "audit", "head", "-c", f.config)
	assert.Equal(t, exitFailed, code)
	assert.Empty(t, stdout, "no head is printed for a broken chain")
	assert.Contains(t, stderr, "row 7 was changed")

	// The same, with the key: the chain holds, the kept head does not.
	prev = f.rows[4].Hash
	for _, e := range f.rows[6:] {
		e.PrevHash = prev
		e.Hash, _ = e.ComputeMAC(f.keys)
		_, err = f.raw.Exec(ctx, "UPDATE audit_log SET prev_hash=$1, hash=$2 WHERE id=$3", e.PrevHash, e.Hash, e.ID)
		require.NoError(t, err)
		prev = e.Hash
	}
	stdout, stderr, code = f.run(t, "audit", "verify", "-c", f.config)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "audit log intact: 9 rows")
	stdout, stderr, code = f.run(t, "audit", "verify", "-c", f.config, "--expect", head)
	assert.Equal(t, exitFailed, code, stdout)
	assert.Contains(t, stderr, fmt.Sprintf("audit log chain is broken: row 10's hash is %s, not the %s kept as head %s: "+
		"the log up to row 10 was rewritten", prev, strings.SplitN(head, ":", 2)[1], head))
	assert.Contains(t, stderr, "The chain itself holds (9 rows, up to row 10)")

	// Cut back to row 8: the kept head names a row past the end.
	_, err = f.raw.Exec(ctx, "DELETE FROM audit_log WHERE id>8")
	require.NoError(t, err)
	_, stderr, code = f.run(t, "audit", "verify", "-c", f.config, "--expect", head)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "the kept head "+head+" names row 10, but the log ends at row 8: rows were cut from its end")
}
