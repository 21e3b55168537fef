package tests

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"tokenauth/config"
	"tokenauth/models"
)

// The hand-written lookup reads a token and its user exactly as GORM does,
// but for the columns it leaves out on purpose.
func TestFindTokenByHashMatchesTheORM(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, tok := s.UserWithToken(t, "alice")
	s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	if err := s.Usage.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	hash := models.HashToken(tok)
	if err := s.DB.Model(&models.APIToken{}).Where("key_hash = ?", hash).
		UpdateColumns(map[string]any{"revoked_at": time.Now().UTC(), "revoked_reason": "user"}).Error; err != nil {
		t.Fatal(err)
	}
	got, err := models.FindTokenByHash(t.Context(), s.DB, hash)
	if err != nil {
		t.Fatal(err)
	}
	var want models.APIToken
	if err := s.DB.Joins("User").Where("api_tokens.key_hash = ?", hash).Take(&want).Error; err != nil {
		t.Fatal(err)
	}
	if want.LastUsedAt == nil || want.RevokedAt == nil || want.User.LastLoginAt == nil {
		t.Fatalf("fixture leaves nullable columns empty: %+v", want)
	}
	// The columns the lookup leaves out on purpose (models.lookupSkips).
	want.RevokedReason, want.User.PasswordHash, want.User.UsernameKey, want.User.UpdatedAt = "", "", "", time.Time{}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("FindTokenByHash:\n got %+v\nwant %+v", *got, want)
	}
	if _, err := models.FindTokenByHash(t.Context(), s.DB, models.HashToken("tka_unknown")); err != models.ErrNotFound {
		t.Errorf("unknown hash: got %v, want ErrNotFound", err)
	}
}

// On PostgreSQL the database lends its pgx pool to the lookup, which
// would otherwise fall back, unnoticed, to GORM's slower path.
func TestPostgresLendsItsPgxPoolToTheLookup(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, lends := s.DB.ConnPool.(interface{ PgxPool() *pgxpool.Pool })
	if want := config.IsPostgres(s.Config.DatabaseURL); lends != want {
		t.Errorf("database at %q lends a pgx pool: %v, want %v", s.Config.DatabaseURL, lends, want)
	}
}
