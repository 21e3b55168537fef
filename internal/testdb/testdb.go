// Package testdb gives each test its own empty database: a SQLite file in
// the test's temporary folder, or, when TEST_DATABASE_URL names a
// PostgreSQL server, a fresh schema on it that is dropped when the test
// ends. An unreachable PostgreSQL fails the test; it never skips.
package testdb

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"tokenauth/config"
)

// URL returns the database URL of a fresh, empty database that lives as
// long as the test.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		return filepath.Join(t.TempDir(), "test.db")
	}
	if !config.IsPostgres(base) {
		t.Fatalf("TEST_DATABASE_URL must be a postgres:// URL, got %q", base)
	}
	database, err := config.OpenDatabase(base)
	if err != nil {
		t.Fatalf("opening TEST_DATABASE_URL: %v", err)
	}
	admin := database.ORM
	schema := "test_" + randomHex(8)
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("creating schema %s (is PostgreSQL running?): %v", schema, err)
	}
	t.Cleanup(func() {
		if err := admin.Exec("DROP SCHEMA " + schema + " CASCADE").Error; err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		database.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parsing TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b)
}
