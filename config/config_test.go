package config

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadHardeningSettings(t *testing.T) {
	t.Parallel()
	env := func(values map[string]string) func(string) (string, bool) {
		return func(key string) (string, bool) { v, ok := values[key]; return v, ok }
	}
	cfg, _, err := Load(env(map[string]string{"REQUEST_TIMEOUT": "2s", "REDIS_URL": "redis://127.0.0.1:6379/1",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1", "EXTRA_SCOPES": "orders:read, billing/v2.write"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ExtraScopes) != 2 || cfg.ExtraScopes[0] != "orders:read" || cfg.ExtraScopes[1] != "billing/v2.write" {
		t.Errorf("EXTRA_SCOPES: got %q", cfg.ExtraScopes)
	}
	if cfg.RequestTimeout != 2*time.Second || cfg.RedisURL != "redis://127.0.0.1:6379/1" || len(cfg.TrustedProxies) != 2 {
		t.Errorf("got %+v", cfg)
	}
	if d := Default(); d.RequestTimeout != 15*time.Second || d.LoginIPPerMinute != 20 || d.LoginUserFailures != 5 ||
		d.HashQueueTimeout != 2*time.Second || d.PasswordHashConcurrency != max(1, runtime.NumCPU()-1) {
		t.Errorf("defaults: %+v", d)
	}

	bad := []struct {
		key, value string
	}{
		{"REQUEST_TIMEOUT", "0"},
		{"REQUEST_TIMEOUT", "soon"},
		{"REDIS_URL", "http://:hunter2@cache:6379"},
		{"TRUSTED_PROXIES", "proxy.internal"},
		{"LOGIN_IP_PER_MINUTE", "0"},
		{"LOGIN_USER_WINDOW", "-1m"},
		// The server's write timeout is 30s: a request must be answered
		// before it.
		{"REQUEST_TIMEOUT", "30s"},
		{"REQUEST_TIMEOUT", "1m"},
		{"ADDR", "19202"},
		{"ADDR", "localhost"},
		{"ADDR", ":http"},
		{"ADDR", ":65536"},
		{"ADDR", "127.0.0.1:"},
		{"DATABASE_URL", "postgress://app:hunter2@db.internal/app"},
		{"DATABASE_URL", "mysql://app:hunter2@db.internal/app"},
		{"DATABASE_URL", "postgres://app:hunter2@db.internal:notaport/app"},
		{"DATABASE_URL", "/nonexistent-folder/tokenauth.db"},
		{"DATABASE_URL", t.TempDir()},
		{"METRICS_ADDR", "9464"},
		{"EXTRA_SCOPES", "orders:read,orders read"},
		{"EXTRA_SCOPES", `billing:"x"`},
		{"EXTRA_SCOPES", "*"},
		{"EXTRA_SCOPES", strings.Repeat("a", 65)},
		{"PASSWORD_HASH_CONCURRENCY", "0"},
		{"PASSWORD_HASH_CONCURRENCY", "two"},
		{"PASSWORD_HASH_CONCURRENCY", "257"},
		{"HASH_QUEUE_TIMEOUT", "0"},
		{"HASH_QUEUE_TIMEOUT", "-2s"},
		{"HASH_QUEUE_TIMEOUT", "2"},
	}
	for _, tc := range bad {
		_, _, err := Load(env(map[string]string{tc.key: tc.value}), "")
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s=%s: got %v, want an error naming the setting", tc.key, tc.value, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error repeats a password: %v", tc.key, err)
		}
	}
}

func TestLoadAcceptsListenAddressesAndDatabases(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := []struct{ key, value string }{
		{"ADDR", ":8080"},
		{"ADDR", "127.0.0.1:0"},
		{"ADDR", "[::1]:8080"},
		{"ADDR", "localhost:8080"},
		{"REQUEST_TIMEOUT", "29s"},
		{"PASSWORD_HASH_CONCURRENCY", "1"},
		{"HASH_QUEUE_TIMEOUT", "500ms"},
		{"DATABASE_URL", filepath.Join(dir, "tokenauth.db")},
		{"DATABASE_URL", "tokenauth.db"},
		{"DATABASE_URL", "postgres://app:hunter2@db.internal:5432/app?sslmode=disable"},
		{"DATABASE_URL", "postgresql://app@db.internal/app"},
	}
	for _, tc := range good {
		if _, _, err := Load(func(key string) (string, bool) {
			if key == tc.key {
				return tc.value, true
			}
			return "", false
		}, ""); err != nil {
			t.Errorf("%s=%s: %v", tc.key, tc.value, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("loading the settings created %d file(s)", len(entries))
	}
}

func TestLoadReportsDotEnvKeysThatAreNoSetting(t *testing.T) {
	t.Parallel()
	envFile := filepath.Join(t.TempDir(), ".env")
	content := "TOKEN_TTTL=1h\nTOKEN_TTL=2h\nexport LOG_LEVL=debug\nCOLOUR=blue\n# NOT_A_KEY=1\n"
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, unknown, err := Load(func(string) (string, bool) { return "", false }, envFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenTTL != 2*time.Hour {
		t.Errorf("TOKEN_TTL: got %s, want 2h from the file", cfg.TokenTTL)
	}
	want := []UnknownSetting{{Key: "COLOUR"}, {Key: "LOG_LEVL", Like: "LOG_LEVEL"}, {Key: "TOKEN_TTTL", Like: "TOKEN_TTL"}}
	if !slices.Equal(unknown, want) {
		t.Errorf("unknown settings: got %+v, want %+v", unknown, want)
	}
}

func TestDescribeDatabaseHidesThePassword(t *testing.T) {
	t.Parallel()
	cases := []struct{ url, want string }{
		{"postgres://app:hunter2@db.internal:5432/app?sslmode=disable", "PostgreSQL postgres://app:xxxxx@db.internal:5432/app?sslmode=disable"},
		{"postgres://app@db.internal/app?password=hunter2", "PostgreSQL postgres://app@db.internal/app?password=xxxxx"},
		{"/var/lib/tokenauth/tokenauth.db", "SQLite /var/lib/tokenauth/tokenauth.db"},
	}
	for _, tc := range cases {
		if got := DescribeDatabase(tc.url); got != tc.want {
			t.Errorf("DescribeDatabase(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
	if got, wd := DescribeDatabase("tokenauth.db"), must(os.Getwd()); got != "SQLite "+filepath.Join(wd, "tokenauth.db") {
		t.Errorf("a relative SQLite path: got %q, want it made absolute", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestEnvExampleHoldsOnlySettings(t *testing.T) {
	t.Parallel()
	_, unknown, err := Load(func(string) (string, bool) { return "", false }, "../.env.example")
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	for _, u := range unknown {
		t.Errorf(".env.example has %s, which is no setting", u.Key)
	}
}

// METRICS_ADDR has a default, and empty turns the metrics listener off,
// whether the environment or the .env file says so; the environment wins.
func TestLoadMetricsAddr(t *testing.T) {
	t.Parallel()
	writeEnv := func(content string) string {
		path := filepath.Join(t.TempDir(), ".env")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name string
		env  map[string]string
		file string
		want string
	}{
		{"default", nil, "", "127.0.0.1:9464"},
		{"set", map[string]string{"METRICS_ADDR": "0.0.0.0:9100"}, "", "0.0.0.0:9100"},
		{"empty in the environment", map[string]string{"METRICS_ADDR": ""}, "", ""},
		{"empty in the file", nil, "METRICS_ADDR=\n", ""},
		{"set in the file", nil, "METRICS_ADDR=127.0.0.1:9100\n", "127.0.0.1:9100"},
		{"empty in the environment over the file", map[string]string{"METRICS_ADDR": ""}, "METRICS_ADDR=127.0.0.1:9100\n", ""},
	}
	for _, tc := range cases {
		envFile := ""
		if tc.file != "" {
			envFile = writeEnv(tc.file)
		}
		cfg, _, err := Load(func(key string) (string, bool) { v, ok := tc.env[key]; return v, ok }, envFile)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if cfg.MetricsAddr != tc.want {
			t.Errorf("%s: METRICS_ADDR %q, want %q", tc.name, cfg.MetricsAddr, tc.want)
		}
	}
}

// REAUTH_MAX_AGE defaults to 15 minutes, 0 turns it off, and a value that
// is not a duration of a second or more (or 0) is refused by name.
func TestLoadReauthMaxAge(t *testing.T) {
	t.Parallel()
	load := func(v string) (Config, error) {
		cfg, _, err := Load(func(key string) (string, bool) {
			if key == "REAUTH_MAX_AGE" {
				return v, true
			}
			return "", false
		}, "")
		return cfg, err
	}
	if d := Default().ReauthMaxAge; d != 15*time.Minute {
		t.Errorf("default REAUTH_MAX_AGE %s, want 15m", d)
	}
	for v, want := range map[string]time.Duration{"0": 0, "5m": 5 * time.Minute, "1s": time.Second, "2h": 2 * time.Hour} {
		cfg, err := load(v)
		if err != nil || cfg.ReauthMaxAge != want {
			t.Errorf("REAUTH_MAX_AGE=%s: got %s, %v; want %s", v, cfg.ReauthMaxAge, err, want)
		}
	}
	for _, v := range []string{"-1m", "soon", "500ms", "15"} {
		if _, err := load(v); err == nil || !strings.HasPrefix(err.Error(), "REAUTH_MAX_AGE:") {
			t.Errorf("REAUTH_MAX_AGE=%s: got %v, want an error naming the setting", v, err)
		}
	}
}

func TestLoadTokenPolicySettings(t *testing.T) {
	t.Parallel()
	env := func(values map[string]string) func(string) (string, bool) {
		return func(key string) (string, bool) { v, ok := values[key]; return v, ok }
	}
	if d := Default(); d.TokenRotationMaxGrace != 24*time.Hour || !d.UserRateLimit.IsZero() {
		t.Errorf("defaults: grace %v, user limit %+v", d.TokenRotationMaxGrace, d.UserRateLimit)
	}
	good := []struct {
		value    string
		requests int
		period   time.Duration
	}{
		{"1000/1h", 1000, time.Hour},
		{"5 / minute", 5, time.Minute},
		{"86400/24h", 86400, 24 * time.Hour},
		{"10/30s", 10, 30 * time.Second},
	}
	for _, tc := range good {
		cfg, _, err := Load(env(map[string]string{"USER_RATE_LIMIT": tc.value, "TOKEN_ROTATION_MAX_GRACE": "0"}), "")
		if err != nil {
			t.Fatalf("USER_RATE_LIMIT=%s: %v", tc.value, err)
		}
		if cfg.UserRateLimit.Requests != tc.requests || cfg.UserRateLimit.Period != tc.period || cfg.TokenRotationMaxGrace != 0 {
			t.Errorf("USER_RATE_LIMIT=%s: got %+v, grace %v", tc.value, cfg.UserRateLimit, cfg.TokenRotationMaxGrace)
		}
	}
	bad := []struct{ key, value string }{
		{"USER_RATE_LIMIT", "1000"},
		{"USER_RATE_LIMIT", "0/1h"},
		{"USER_RATE_LIMIT", "-5/1h"},
		{"USER_RATE_LIMIT", "100/2d"},
		{"USER_RATE_LIMIT", "100/48h"},
		{"USER_RATE_LIMIT", "100/500ms"},
		{"USER_RATE_LIMIT", "lots/1h"},
		{"TOKEN_ROTATION_MAX_GRACE", "-1h"},
		{"TOKEN_ROTATION_MAX_GRACE", "a day"},
	}
	for _, tc := range bad {
		_, _, err := Load(env(map[string]string{tc.key: tc.value}), "")
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s=%s: got %v, want an error naming the setting", tc.key, tc.value, err)
		}
	}
}
