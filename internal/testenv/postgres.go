package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // PostgreSQL driver
	_ "go.mau.fi/util/dbutil/litestream"
)

// DepPostgres names PostgreSQL for RequireDep.
const DepPostgres = "PostgreSQL"

func init() {
	installHints[DepPostgres] = "run scripts/test-deps.sh (make test does: it makes a test cluster on 127.0.0.1:54329 " +
		"with trust auth on loopback), or set CAREBRIDGE_TEST_POSTGRES to a server URI"
}

// DBSpec is a database a test can give the bridge: the dbutil dialect and its URI.
type DBSpec struct {
	Name string // "sqlite" or "postgres", for subtest names
	Type string // bridge config database.type
	URI  string
}

// postgresAdminURI is the server the tests create their databases on: the test cluster
// scripts/test-deps.sh makes (port CAREBRIDGE_TEST_PG_PORT, 54329 by default), or
// CAREBRIDGE_TEST_POSTGRES.
func postgresAdminURI() string {
	if uri := os.Getenv("CAREBRIDGE_TEST_POSTGRES"); uri != "" {
		return uri
	}
	port := os.Getenv("CAREBRIDGE_TEST_PG_PORT")
	if port == "" {
		port = "54329"
	}
	return "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"
}

// NewSQLite returns a fresh SQLite database file in the test's temp dir.
func NewSQLite(t testing.TB) DBSpec {
	path := filepath.Join(t.TempDir(), "carebridge.db")
	return DBSpec{Name: "sqlite", Type: "sqlite3-fk-wal", URI: "file:" + path + "?_txlock=immediate&_stmt_cache_size=128"}
}

// NewPostgres creates a database of the test's own on the local PostgreSQL server and
// drops it when the test ends.
func NewPostgres(t testing.TB) DBSpec {
	t.Helper()
	return DBSpec{Name: "postgres", Type: "postgres", URI: newPostgresDB(t, "carebridge_test_", "")}
}

// newPostgresDB creates a database named prefix and a random suffix, with the given
// CREATE DATABASE options, drops it when the test ends and returns its URI.
func newPostgresDB(t testing.TB, prefix, options string) string {
	t.Helper()
	admin, err := sql.Open("postgres", postgresAdminURI())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	RequireDep(t, DepPostgres, err)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := prefix + hex.EncodeToString(suffix)
	if _, err = admin.Exec("CREATE DATABASE " + name + " " + options); err != nil {
		t.Fatalf("failed to create test database: %v", err)
	}
	t.Cleanup(func() {
		_, dropErr := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		if dropErr != nil {
			t.Logf("failed to drop test database %s: %v", name, dropErr)
		}
		_ = admin.Close()
	})
	return postgresURIFor(name)
}

func postgresURIFor(dbName string) string {
	base := postgresAdminURI()
	// Swap the database name in the admin URI's path.
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("CAREBRIDGE_TEST_POSTGRES is not a URI: %v", err))
	}
	u.Path = "/" + dbName
	return u.String()
}

// DatabaseKinds are the databases every query and migration must pass on.
var DatabaseKinds = []string{"sqlite", "postgres"}

// NewDatabase returns a fresh database of the given kind (one of DatabaseKinds).
func NewDatabase(t testing.TB, kind string) DBSpec {
	if kind == "postgres" {
		return NewPostgres(t)
	}
	return NewSQLite(t)
}
