// Command onequery is the baseline the service's uncached token lookup is
// measured against: GET /api/profile/ written by hand with net/http and
// pgx, one query per request (the token by its key hash, joined to its
// user), no framework, no ORM, no cache, no logs. For a live token with a
// profile scope it answers the service's body, byte for byte, and 401 for
// anything else.
//
//	DATABASE_URL=postgres://... ADDR=127.0.0.1:18083 onequery
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const lookup = `SELECT u.id, u.username, u.email, u.is_active, u.created_at, u.last_login_at,
	t.scopes, t.expires_at, t.revoked_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE t.key_hash = $1`

type profile struct {
	ID          uint       `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	IsActive    bool       `json:"is_active"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	cfg.MaxConns = 32 // as the service's pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/profile/", func(w http.ResponseWriter, r *http.Request) {
		p, err := find(r.Context(), pool, r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"The token is invalid, expired or revoked.","code":"invalid_token"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		body, err := json.Marshal(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: os.Getenv("ADDR"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var errRefused = errors.New("refused")

func find(ctx context.Context, pool *pgxpool.Pool, header string) (*profile, error) {
	secret, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return nil, errRefused
	}
	sum := sha256.Sum256([]byte(secret))
	var (
		p                  profile
		scopes             string
		expires, revokedAt *time.Time
	)
	err := pool.QueryRow(ctx, lookup, hex.EncodeToString(sum[:])).Scan(&p.ID, &p.Username, &p.Email, &p.IsActive,
		&p.CreatedAt, &p.LastLoginAt, &scopes, &expires, &revokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errRefused
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if revokedAt != nil || !p.IsActive || expires != nil && !now.Before(*expires) {
		return nil, errRefused
	}
	for s := range strings.FieldsSeq(scopes) {
		if s == "*" || s == "profile:read" {
			// The service's times: UTC, in whole seconds.
			p.CreatedAt = p.CreatedAt.UTC().Truncate(time.Second)
			if p.LastLoginAt != nil {
				t := p.LastLoginAt.UTC().Truncate(time.Second)
				p.LastLoginAt = &t
			}
			return &p, nil
		}
	}
	return nil, errRefused
}
