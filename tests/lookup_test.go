package tests

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
)

// The hand-written lookup reads a token and its user exactly as GORM does,
// but for the columns it leaves out on purpose.
func TestFindTokenByHashMatchesTheORM(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice, tok := s.UserWithToken(t, "alice")
	if err := models.SetEmail(t.Context(), s.DB, alice, alice.Email, true); err != nil {
		t.Fatal(err)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	hash := models.HashToken(tok)
	if err := s.DB.Model(&models.APIToken{}).Where("key_hash = ?", hash).
		UpdateColumns(map[string]any{"revoked_at": time.Now().UTC(), "revoked_reason": "user",
			"paused_at": time.Now().UTC(), "allowed_ips": "10.0.0.0/8,2001:db8::/32", "rate_limit_requests": 5,
			"rate_limit_seconds": 60, "rotated_to_id": alice.ID, "metadata": `{"team":"ci"}`,
			"previous_expires_at": time.Now().UTC()}).Error; err != nil {
		t.Fatal(err)
	}
	got, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, hash)
	if err != nil {
		t.Fatal(err)
	}
	var want models.APIToken
	if err := s.DB.Joins("User").Where("api_tokens.key_hash = ?", hash).Take(&want).Error; err != nil {
		t.Fatal(err)
	}
	if want.LastUsedAt == nil || want.RevokedAt == nil || want.User.LastLoginAt == nil || want.User.EmailVerifiedAt == nil ||
		want.PausedAt == nil || want.RotatedToID == nil || len(want.AllowedIPs) == 0 || len(want.Networks) == 0 {
		t.Fatalf("fixture leaves nullable columns empty: %+v", want)
	}
	// The columns the lookup leaves out on purpose (models.lookupSkips).
	want.RevokedReason, want.User.PasswordHash, want.User.UsernameKey, want.User.UpdatedAt = "", "", "", time.Time{}
	want.User.EmailKey = ""
	want.LastIP, want.LastUserAgent, want.Metadata, want.PreviousExpiresAt = "", "", "", nil
	want.Networks = nil
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("FindTokenByHash:\n got %+v\nwant %+v", *got, want)
	}
	if _, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, models.HashToken("tka_unknown")); err != models.ErrNotFound {
		t.Errorf("unknown hash: got %v, want ErrNotFound", err)
	}
}

// On PostgreSQL the lookup runs on the pgx pool itself, not through
// database/sql, which would work as well, only slower, and go unnoticed.
// database/sql keeps no idle connection over the pool: each statement it
// runs ends by closing one, and MaxIdleClosed counts them.
func TestLookupRunsOnThePgxPool(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	lends := s.Pool != nil
	if want := config.IsPostgres(s.Config.DatabaseURL); lends != want {
		t.Fatalf("database at %q lends a pgx pool: %v, want %v", s.Config.DatabaseURL, lends, want)
	}
	if !lends {
		return // SQLite: the lookup goes through GORM, which TestFindTokenByHashMatchesTheORM covers
	}
	sqlDB, err := s.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Exec("SELECT 1").Error; err != nil {
		t.Fatal(err)
	}
	before := sqlDB.Stats().MaxIdleClosed
	if before == 0 {
		t.Fatal("a statement through database/sql closed no connection: the signal below would be blind")
	}
	const lookups = 20
	for range lookups {
		unknown, err := models.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		s.Do(t, Request{Path: "/api/profile/", Token: unknown}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	}
	// The server's own work (writing last-used times) may use
	// database/sql meanwhile, but not once per lookup.
	if closed := sqlDB.Stats().MaxIdleClosed - before; closed >= lookups {
		t.Errorf("%d lookups closed %d database/sql connections: they did not run on the pgx pool", lookups, closed)
	}
}
