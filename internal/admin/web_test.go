package admin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With SQLite, which one process only may use, `carebridge web` refuses to start and says
// why, before it opens the database.
func TestWebRefusesSQLite(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "carebridge.db")
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("database:\n    type: sqlite3-fk-wal\n    uri: file:"+dbPath+"?_txlock=immediate\n"+
		"appservice:\n    public_address: https://chat.clinic.example\n"), 0o600))
	var stdout, stderr bytes.Buffer
	code, handled := Run(context.Background(), []string{"web", "-c", cfgPath}, &stdout, &stderr)
	require.True(t, handled)
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, stderr.String(), `carebridge web refuses to start: database.type is "sqlite3-fk-wal"`)
	assert.Contains(t, stderr.String(), "PostgreSQL (database.type: postgres)")
	assert.NoFileExists(t, dbPath, "the database was not opened")
}
