package tests

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"tokenauth/config"
)

func TestLogsNeverHoldSecrets(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.AllowRegistration = true; c.LoginUserFailures = 2 }))
	password := "pw-" + randomHex(12)
	s.CreateUser(t, "alice", password)
	token := s.Login(t, "alice", password)
	secrets := map[string]string{"password": password, "login token": token}
	remember := func(name, value string) string { secrets[name] = value; return value }

	wrong := remember("wrong password", "pw-"+randomHex(12))
	// A password change first: the failed logins below lock the username,
	// and a locked username cannot change its password either.
	next := remember("new password", "pw-"+randomHex(12))
	s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: token,
		Body: map[string]string{"current_password": wrong, "new_password": next}}).Expect(t, 400)
	s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: token,
		Body: map[string]string{"current_password": password, "new_password": next}}).Expect(t, 204)
	password = next
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": wrong}}).Expect(t, 401)
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": wrong}}).Expect(t, 401)
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "nobody", "password": wrong}}).Expect(t, 401)
	// A password sent as the username (a common slip) stays out of the logs too.
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": password, "password": wrong}}).Expect(t, 401)
	// Locked now: the refusal is logged, the password is not.
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": password}}).Expect(t, 429)
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: `{"username":"alice","password":"` + wrong + `","extra":1}`}).Expect(t, 400)

	created := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": "ci"}}).Expect(t, http.StatusCreated).JSON(t)
	ci := remember("created token", created["token"].(string))
	id := int(created["id"].(float64))
	rotated := s.Do(t, Request{Method: "POST", Path: "/api/tokens/" + strconv.Itoa(id) + "/rotate/", Token: token}).Expect(t, http.StatusCreated).JSON(t)
	remember("rotated token", rotated["token"].(string))

	s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, 200)
	s.Do(t, Request{Path: "/api/profile/", Token: ci}).Expect(t, 401) // rotated away
	s.Do(t, Request{Path: "/api/profile/", Header: map[string]string{"Authorization": "Bearer " + token + " " + token}}).Expect(t, 400)
	basic := remember("basic credentials", base64.StdEncoding.EncodeToString([]byte("alice:"+password)))
	s.Do(t, Request{Path: "/api/profile/", Header: map[string]string{"Authorization": "Basic " + basic}}).Expect(t, 401)
	s.Do(t, Request{Path: "/api/profile/", Header: map[string]string{"Authorization": "Token " + token}}).Expect(t, 401)
	s.Do(t, Request{Path: "/api/profile/?access_token=" + token}).Expect(t, 400)
	s.Do(t, Request{Path: "/api/profile/?next=" + token}).Expect(t, 400)
	s.Do(t, Request{Path: "/api/" + token, OffSpec: true}).Expect(t, 400)
	s.Do(t, Request{Path: "/healthz", Header: map[string]string{"X-Request-ID": token}}).Expect(t, 200)

	registered := remember("registration password", "pw-"+randomHex(12))
	s.Do(t, Request{Method: "POST", Path: "/api/register/",
		Body: map[string]string{"username": "bob", "email": "bob@example.com", "password": registered}}).Expect(t, 201)

	logs := s.Logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	var requests int
	for _, line := range lines {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["msg"] == "request" {
			requests++
		}
	}
	// Each request above left its line: the check below looked at them.
	if requests < 20 {
		t.Fatalf("only %d request log lines; the test expected every request logged:\n%s", requests, logs)
	}
	for name, secret := range secrets {
		// The whole secret, and any long piece of it.
		for _, piece := range []string{secret, secret[len(secret)/2:], secret[:len(secret)/2]} {
			if strings.Contains(logs, piece) {
				t.Errorf("the %s (or part of it) reached the logs:\n%s", name, logs)
				break
			}
		}
	}
	if strings.Contains(strings.ToLower(logs), "authorization") || strings.Contains(logs, "Bearer") {
		t.Errorf("an Authorization header reached the logs:\n%s", logs)
	}
}
