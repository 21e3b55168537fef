package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadMailSettings(t *testing.T) {
	t.Parallel()
	env := func(values map[string]string) func(string) (string, bool) {
		return func(key string) (string, bool) { v, ok := values[key]; return v, ok }
	}
	d := Default()
	if d.PublicURL != "http://localhost:8080" || d.SMTPURL != "" || d.MailFrom != "tokenauth <no-reply@localhost>" ||
		d.PasswordResetTTL != time.Hour || d.RequireVerifiedEmail {
		t.Errorf("defaults: %+v", d)
	}
	cfg, _, err := Load(env(map[string]string{"PUBLIC_URL": "https://app.example.com", "SMTP_URL": "smtps://u:p%40ss@mail.example.com",
		"MAIL_FROM": "Ops <ops@example.com>", "PASSWORD_RESET_TTL": "30m", "REQUIRE_VERIFIED_EMAIL": "true"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://app.example.com" || cfg.PasswordResetTTL != 30*time.Minute || !cfg.RequireVerifiedEmail {
		t.Errorf("got %+v", cfg)
	}

	servers := []struct {
		url  string
		want SMTPServer
	}{
		{"smtp://mail.example.com", SMTPServer{Host: "mail.example.com", Port: 587}},
		{"smtp://u:p%40ss@mail.example.com:2525", SMTPServer{Host: "mail.example.com", Port: 2525, Username: "u", Password: "p@ss"}},
		{"smtps://mail.example.com", SMTPServer{Host: "mail.example.com", Port: 465, Implicit: true}},
		{"smtp://127.0.0.1:25?tls=none", SMTPServer{Host: "127.0.0.1", Port: 25, NoTLS: true}},
	}
	for _, tc := range servers {
		if got, err := ParseSMTPURL(tc.url); err != nil || got != tc.want {
			t.Errorf("ParseSMTPURL(%q): got %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
	}

	bad := []struct{ key, value string }{
		{"SMTP_URL", "http://u:hunter2@mail.example.com"},
		{"SMTP_URL", "smtps://u:hunter2@mail.example.com?tls=none"},
		{"SMTP_URL", "smtp://u:hunter2@mail.example.com?tls=off"},
		{"SMTP_URL", "smtp://u:hunter2@mail.example.com?insecure=1"},
		{"SMTP_URL", "smtp://u:hunter2@mail.example.com:99999"},
		{"SMTP_URL", "smtp://u:hunter2@/"},
		{"MAIL_FROM", "not an address"},
		{"PUBLIC_URL", "app.example.com"},
		{"PUBLIC_URL", "https://app.example.com/#x"},
		{"PUBLIC_URL", "https://app.example.com/?next=1"},
		{"PASSWORD_RESET_TTL", "0"},
		{"REQUIRE_VERIFIED_EMAIL", "maybe"},
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
