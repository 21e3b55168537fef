// Command seed fills a migrated PostgreSQL database for the benchmarks:
//
//	seed -db postgres://... -total 1000000 -known 1000 -secrets tokens.txt -login-users 64 -password '...'
//
// It makes login users login1..loginN, all with one password (hashed once
// with the service's argon2id parameters), holding no token yet; token
// users owning -known tokens whose secrets are generated here and written
// to -secrets (the load uses them), copied in with COPY; and filler tokens
// up to -total, made by generate_series in SQL, with the SHA-256 of a
// secret nobody holds as their key hash.
//
// With -history-secrets PREFIX it also makes two users for the growth
// target: history-big, with -history-events security events and
// -history-tokens live tokens (plus as many revoked ones), and
// history-small, with 10 events and one live token; the secret of one
// live token of each goes to PREFIX-big.txt and PREFIX-small.txt.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"tokenauth/models"
	"tokenauth/password"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run() error {
	dbURL := flag.String("db", "", "PostgreSQL URL of a migrated, empty database")
	total := flag.Int("total", 1000, "tokens in the table in all")
	known := flag.Int("known", 1000, "tokens whose secrets are written to -secrets")
	secretsFile := flag.String("secrets", "", "file to write the known secrets to")
	tokenUsers := flag.Int("token-users", 100, "users owning the known tokens")
	loginUsers := flag.Int("login-users", 64, "users login1..loginN for the login load")
	plain := flag.String("password", "", "password of the login users")
	historySecrets := flag.String("history-secrets", "", "prefix of the files for the secrets of history-big and history-small (none: no such users)")
	historyEvents := flag.Int("history-events", 100000, "security events of history-big")
	historyTokens := flag.Int("history-tokens", 50, "live tokens of history-big (MAX_TOKENS_PER_USER)")
	flag.Parse()
	if *dbURL == "" || *secretsFile == "" || *plain == "" || *known < 1 || *total < *known || *tokenUsers < 1 {
		flag.Usage()
		return errors.New("-db, -secrets and -password are required, and 1 <= -known <= -total")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	start := time.Now()

	hash, err := password.NewHasher(password.DefaultParams, runtime.GOMAXPROCS(0)).Hash(ctx, *plain)
	if err != nil {
		return err
	}
	// User 1 owns the filler; then the token users; then the login users.
	if _, err := conn.Exec(ctx, `INSERT INTO users (username, username_key, email, password_hash, is_active, created_at, updated_at)
		SELECT name, name, name || '@example.com', $1, true, now(), now()
		FROM (SELECT 'filler' AS name, 0 AS o UNION ALL
		      SELECT 'tokens' || i, i FROM generate_series(1, $2::int) i UNION ALL
		      SELECT 'login' || i, $2::int + i FROM generate_series(1, $3::int) i) n ORDER BY o`,
		hash, *tokenUsers, *loginUsers); err != nil {
		return fmt.Errorf("users: %w", err)
	}

	secrets := make([]string, *known)
	rows := make([][]any, *known)
	now := time.Now().UTC()
	expires := now.Add(30 * 24 * time.Hour)
	for i := range secrets {
		s, err := models.NewTokenSecret()
		if err != nil {
			return err
		}
		secrets[i] = s
		rows[i] = []any{int64(2 + i%*tokenUsers), "bench", models.KindPersonal, models.HashToken(s),
			s[:models.DisplayPrefixLength], "*", now, expires, ""}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"api_tokens"},
		[]string{"user_id", "name", "kind", "key_hash", "prefix", "scopes", "created_at", "expires_at", "revoked_reason"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("known tokens: %w", err)
	}
	if filler := *total - *known; filler > 0 {
		if _, err := conn.Exec(ctx, `INSERT INTO api_tokens (user_id, name, kind, key_hash, prefix, scopes, created_at, expires_at, revoked_reason)
			SELECT 1, 'filler', 'personal', encode(sha256(('filler ' || i)::bytea), 'hex'), 'tka_filler00', '*', now(), now() + interval '30 days', ''
			FROM generate_series(1, $1::int) i`, filler); err != nil {
			return fmt.Errorf("filler tokens: %w", err)
		}
	}
	if *historySecrets != "" {
		if err := seedHistory(ctx, conn, hash, *historySecrets, *historyEvents, *historyTokens); err != nil {
			return fmt.Errorf("history users: %w", err)
		}
	}
	// VACUUM sets the hint bits and the visibility map of the fresh rows and
	// CHECKPOINT writes them out, so that neither autovacuum nor the first
	// reads do that work during a measurement (it would land on whichever
	// side ran first). VACUUM cannot run in a transaction: one per call.
	for _, stmt := range []string{"VACUUM (ANALYZE) users", "VACUUM (ANALYZE) api_tokens", "VACUUM (ANALYZE) security_events", "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	if err := os.WriteFile(*secretsFile, []byte(strings.Join(secrets, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("seeded %d tokens (%d known) and %d login users in %.1fs\n", *total, *known, *loginUsers, time.Since(start).Seconds())
	return nil
}

// seedHistory makes history-big (events security events, tokens live
// tokens and as many revoked) and history-small (10 events, 10 live
// tokens and 10 revoked), and writes a live token's secret of each to prefix-big.txt and
// prefix-small.txt.
func seedHistory(ctx context.Context, conn *pgx.Conn, hash, prefix string, events, tokens int) error {
	for _, u := range []struct {
		name           string
		events, tokens int
	}{{"history-big", events, tokens}, {"history-small", 10, 10}} {
		var id int64
		if err := conn.QueryRow(ctx, `INSERT INTO users (username, username_key, email, password_hash, is_active, created_at, updated_at)
			VALUES ($1::text, $1::text, $1::text || '@example.com', $2, true, now(), now()) RETURNING id`, u.name, hash).Scan(&id); err != nil {
			return err
		}
		secret, err := models.NewTokenSecret()
		if err != nil {
			return err
		}
		// One live token with a known secret; the others live and revoked,
		// with secrets nobody holds.
		if _, err := conn.Exec(ctx, `INSERT INTO api_tokens (user_id, name, kind, key_hash, prefix, scopes, created_at, expires_at, revoked_reason)
			VALUES ($1, 'bench', 'personal', $2, $3, '*', now(), now() + interval '30 days', '')`,
			id, models.HashToken(secret), secret[:models.DisplayPrefixLength]); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO api_tokens (user_id, name, kind, key_hash, prefix, scopes, created_at, expires_at, revoked_at, revoked_reason)
			SELECT $1, 'history ' || i, 'personal', encode(sha256(($2::text || ' ' || i)::bytea), 'hex'), 'tka_history0', '*',
				now() - i * interval '1 minute', now() + interval '30 days',
				CASE WHEN i >= $3::int THEN now() END, CASE WHEN i >= $3::int THEN 'user' ELSE '' END
			FROM generate_series(1, 2 * $3::int - 1) i`, id, u.name, u.tokens); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO security_events (user_id, type, reason, ip, user_agent, new_client, created_at)
			SELECT $1, CASE WHEN i % 3 = 0 THEN 'login_failed' ELSE 'login_succeeded' END,
				CASE WHEN i % 3 = 0 THEN 'wrong_password' ELSE '' END,
				'10.0.' || (i / 256 % 256) || '.' || (i % 256), 'bench/1.0', false, now() - i * interval '1 second'
			FROM generate_series(1, $2::int) i`, id, u.events); err != nil {
			return err
		}
		suffix := strings.TrimPrefix(u.name, "history-")
		if err := os.WriteFile(prefix+"-"+suffix+".txt", []byte(secret+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}
