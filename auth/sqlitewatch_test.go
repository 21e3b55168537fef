package auth

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
	"tokenauth/password"
)

// On SQLite, a commit by another connection is in force on the next
// lookup, whether the file's WAL index tells that something was committed
// or, without one, every lookup asks data_version; the service's own
// writes leave the cache as it is.
func TestSQLiteWatchAppliesAnotherConnectionsCommitOnTheNextLookup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		walIndex bool
	}{
		{"with the WAL index", true},
		{"without", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "watch.db")
			service, other := openSQLite(t, path), openSQLite(t, path)
			alice, secret := userWithToken(t, service, "alice")
			bob, _ := userWithToken(t, service, "bob")

			r := NewResolver(service.ORM, nil, Options{CacheTTL: time.Minute})
			walIndex, err := service.WALIndex()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.walIndex {
				walIndex = nil
			}
			feed := NewChangeFeed(r, service.ORM, path, walIndex, slog.New(slog.DiscardHandler))
			ctx, stop := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { feed.Run(ctx); close(done) }()
			t.Cleanup(func() { stop(); <-done })
			for deadline := time.Now().Add(10 * time.Second); !r.Stats().CacheEnabled; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the token cache did not come on")
				}
			}

			resolve := func() error {
				_, err := r.Resolve(t.Context(), Request{Secret: secret, Now: time.Now()})
				return err
			}
			for range 2 {
				if err := resolve(); err != nil {
					t.Fatal(err)
				}
			}
			// A write of the service's own, on its connection.
			if err := models.SetActive(t.Context(), service.ORM, bob, false); err != nil {
				t.Fatal(err)
			}
			if err := resolve(); err != nil {
				t.Fatal(err)
			}
			if st := r.Stats(); st.CacheHits != 2 || st.CacheMisses != 1 {
				t.Fatalf("after the service's own write: %d hits, %d misses; want 2 and 1", st.CacheHits, st.CacheMisses)
			}
			// Another connection, as an operator's subcommand.
			if _, err := models.RevokeTokens(t.Context(), other.ORM,
				models.RevokeQuery{UserID: alice.ID, Reason: models.RevokedByOperator}); err != nil {
				t.Fatal(err)
			}
			if err := resolve(); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("the lookup right after another connection revoked the token: got %v, want ErrInvalidToken", err)
			}
		})
	}
}

func openSQLite(t *testing.T, path string) *config.Database {
	t.Helper()
	database, err := config.OpenDatabase(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { database.Close() })
	if err := config.Migrate(database.ORM); err != nil {
		t.Fatal(err)
	}
	return database
}

func userWithToken(t *testing.T, database *config.Database, username string) (*models.User, string) {
	t.Helper()
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 1)
	u, err := models.NewUser(t.Context(), hasher, models.PasswordPolicy{MinLength: 1}, username, "", "a sturdy passphrase 42")
	if err != nil {
		t.Fatal(err)
	}
	if err := models.CreateUser(t.Context(), database.ORM, u); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour)
	tok, err := models.IssueToken(t.Context(), database.ORM, u.ID, models.TokenSpec{Name: "test", Kind: models.KindLogin,
		Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires}, models.TokenPolicy{MaxPerUser: 10}, false)
	if err != nil {
		t.Fatal(err)
	}
	return u, tok.Secret
}
