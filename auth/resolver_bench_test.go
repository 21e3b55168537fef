package auth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/models"
	"tokenauth/password"
)

// benchAuth builds a Resolver on a fresh database (SQLite, or PostgreSQL
// when TEST_DATABASE_URL is set) with one user and one token, and a
// router that resolves the token as the service's middleware does and
// answers 204.
func benchAuth(b *testing.B, cacheTTL time.Duration) (http.Handler, string, *Resolver) {
	b.Helper()
	gin.SetMode(gin.ReleaseMode)
	cfg := config.Default()
	cfg.DatabaseURL = testdb.URL(b)
	database, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { database.Close() })
	db := database.ORM
	if err := config.Migrate(db); err != nil {
		b.Fatal(err)
	}
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 1)
	u, err := models.NewUser(b.Context(), hasher, models.PasswordPolicy{MinLength: 1}, "alice", "alice@example.com", "a sturdy passphrase 42")
	if err != nil {
		b.Fatal(err)
	}
	if err := models.CreateUser(b.Context(), db, u); err != nil {
		b.Fatal(err)
	}
	expires := time.Now().Add(cfg.TokenTTL)
	tok, err := models.IssueToken(b.Context(), db, u.ID, models.TokenSpec{Name: "bench", Kind: models.KindLogin,
		Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires}, models.TokenPolicy{MaxPerUser: 10}, false)
	if err != nil {
		b.Fatal(err)
	}
	r := NewResolver(db, database.Pool, Options{IdleTimeout: cfg.TokenIdleTimeout, TTL: cfg.TokenTTL,
		MaxTTL: cfg.TokenMaxTTL, CacheTTL: cacheTTL})
	// The feed follows changes as the service's does: on SQLite each
	// request the cache may answer first checks the file.
	walIndex, err := database.WALIndex()
	if err != nil {
		b.Fatal(err)
	}
	feed := NewChangeFeed(r, db, cfg.DatabaseURL, walIndex, slog.New(slog.DiscardHandler))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { feed.Run(ctx); close(done) }()
	b.Cleanup(func() { stop(); <-done })
	if cacheTTL > 0 {
		for deadline := time.Now().Add(10 * time.Second); !r.Stats().CacheEnabled; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("the token cache did not come on")
			}
		}
	}
	router := gin.New()
	router.GET("/", func(c *gin.Context) {
		secret, err := ParseBearer(c.Request.Header.Values("Authorization"))
		if err == nil {
			_, err = r.Resolve(c.Request.Context(), Request{Secret: secret, IP: c.ClientIP(),
				UserAgent: c.Request.UserAgent(), Now: time.Now()})
		}
		if err != nil {
			c.AbortWithStatus(http.StatusUnauthorized)
			return
		}
		c.Status(http.StatusNoContent)
	})
	return router, tok.Secret, r
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

// BenchmarkResolveCached is the hot path: a token found in the cache.
func BenchmarkResolveCached(b *testing.B) {
	h, secret, r := benchAuth(b, time.Minute)
	benchServe(b, h, secret)
	if st := r.Stats(); st.CacheHits != uint64(b.N) {
		b.Fatalf("cache hits: got %d, want one per request (%d)", st.CacheHits, b.N)
	}
}

// BenchmarkResolveUncached looks every token up in the database, which is
// the cost the cache saves.
func BenchmarkResolveUncached(b *testing.B) {
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

// BenchmarkSQLiteChangeCheck measures the ways a request could learn that
// another process committed to a SQLite file (see sqliteWatch), on a file
// with a committed write: reading the WAL index header (what the service
// does), asking PRAGMA data_version on the service's connection (what it
// does only when the header moved; through GORM for comparison), and the
// size and time of the WAL file (os.Stat), which a commit within the same
// clock tick that overwrites the WAL in place leaves unchanged.
func BenchmarkSQLiteChangeCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "watch.db")
	database, err := config.OpenDatabase(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { database.Close() })
	if err := config.Migrate(database.ORM); err != nil {
		b.Fatal(err)
	}
	walIndex, err := database.WALIndex()
	if err != nil {
		b.Fatal(err)
	}
	w := &sqliteWatch{db: database.ORM, walIndex: walIndex}
	b.Run("wal index header", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var h walIndexHeader
			if !w.readHeader(&h) {
				b.Fatal("unreadable WAL index header")
			}
		}
	})
	b.Run("data_version", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.dataVersion(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("data_version through GORM", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var version int64
			if err := database.ORM.Raw("PRAGMA data_version").Scan(&version).Error; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stat of the WAL", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := os.Stat(path + "-wal"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
