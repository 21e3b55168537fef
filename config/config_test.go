package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadHardeningSettings(t *testing.T) {
	t.Parallel()
	env := func(values map[string]string) func(string) string {
		return func(key string) string { return values[key] }
	}
	cfg, err := Load(env(map[string]string{"REQUEST_TIMEOUT": "2s", "REDIS_URL": "redis://127.0.0.1:6379/1",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RequestTimeout != 2*time.Second || cfg.RedisURL != "redis://127.0.0.1:6379/1" || len(cfg.TrustedProxies) != 2 {
		t.Errorf("got %+v", cfg)
	}
	if d := Default(); d.RequestTimeout != 15*time.Second || d.LoginIPPerMinute != 20 || d.LoginUserFailures != 5 {
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
	}
	for _, tc := range bad {
		_, err := Load(env(map[string]string{tc.key: tc.value}), "")
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s=%s: got %v, want an error naming the setting", tc.key, tc.value, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error repeats a password: %v", tc.key, err)
		}
	}
}
