package middlewares

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/models"
)

// benchAuth builds an Authenticator on a fresh database (SQLite, or
// PostgreSQL when TEST_DATABASE_URL is set) with one user and one token,
// and a router that authenticates and answers 204.
func benchAuth(b *testing.B, cacheTTL time.Duration) (http.Handler, string, *Authenticator) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	cfg := config.Default()
	cfg.DatabaseURL = testdb.URL(b)
	cfg.TokenCacheTTL = cacheTTL
	db, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	if err := config.Migrate(db); err != nil {
		b.Fatal(err)
	}
	hasher := models.NewPasswordHasher(models.PasswordParams{Memory: 64, Time: 1, Threads: 1}, 1)
	u := models.NewUser(hasher, "alice", "alice@example.com", "a sturdy passphrase 42")
	if err := models.CreateUser(b.Context(), db, u, models.PasswordPolicy{MinLength: 1}); err != nil {
		b.Fatal(err)
	}
	expires := time.Now().Add(cfg.TokenTTL)
	tok, _, err := models.IssueToken(b.Context(), db, u.ID, models.TokenSpec{Name: "bench", Kind: models.KindLogin,
		Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires}, models.TokenPolicy{MaxPerUser: 10}, false)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthenticator(db, cfg, models.NewUsageRecorder(db))
	a.setCaching(true) // as a ChangeFeed does once it follows changes
	r := gin.New()
	r.GET("/", a.Identify(), RequireScope("profile:read"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	return r, tok.Secret, a
}

func benchServe(b *testing.B, h http.Handler, secret string) {
	warm := httptest.NewRequest(http.MethodGet, "/", nil)
	warm.Header.Set("Authorization", "Bearer "+secret)
	h.ServeHTTP(httptest.NewRecorder(), warm)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkIdentifyCached is the hot path: a token found in the cache.
func BenchmarkIdentifyCached(b *testing.B) {
	h, secret, a := benchAuth(b, time.Minute)
	benchServe(b, h, secret)
	if st := a.Stats(); st.CacheHits != uint64(b.N) {
		b.Fatalf("cache hits: got %d, want one per request (%d)", st.CacheHits, b.N)
	}
}

// BenchmarkIdentifyUncached looks every token up in the database, which is
// the cost the cache saves.
func BenchmarkIdentifyUncached(b *testing.B) {
	h, secret, _ := benchAuth(b, 0)
	benchServe(b, h, secret)
}

// BenchmarkNoAuth is the same router without authentication: the floor.
func BenchmarkNoAuth(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	benchServe(b, r, "")
}
