package tests

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/models"
)

// resourceClient makes a resource-server client, as tokenauth client
// create does, and returns its id and secret.
func (s *Server) resourceClient(t *testing.T, name string) (string, string) {
	t.Helper()
	c, err := models.NewResourceServer(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := models.CreateClient(t.Context(), s.DB, c); err != nil {
		t.Fatal(err)
	}
	return c.ClientID, c.Secret
}

// basic is the Authorization header of a client (RFC 6749, section
// 2.3.1: each part form-encoded first).
func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// oauthPost posts a form to an OAuth route with the Authorization header
// auth (none when empty).
func (s *Server) oauthPost(t *testing.T, path, auth string, form url.Values) *Response {
	t.Helper()
	header := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if auth != "" {
		header["Authorization"] = auth
	}
	return s.Do(t, Request{Method: "POST", Path: path, Header: header, Body: form.Encode()})
}

func introspectionOf(t *testing.T, r *Response) map[string]any {
	t.Helper()
	r.Expect(t, http.StatusOK)
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("introspection: %v: %s", err, r.Body)
	}
	return body
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	s := NewServer(t, WithApp(app.WithClock(clk)), WithConfig(func(c *config.Config) { c.TokenIdleTimeout = time.Hour }))
	clientID, secret := s.resourceClient(t, "orders-service")
	auth := basic(clientID, secret)
	alice := s.CreateUser(t, "alice", testPassword)
	bob := s.CreateUser(t, "bob", testPassword)
	policy := models.TokenPolicy{MaxPerUser: 50, IdleTimeout: time.Hour}

	idle := s.IssueToken(t, alice, "orders:read")
	clk.Advance(time.Hour + time.Minute)
	live := s.IssueToken(t, alice, "orders:read", "profile:read")
	soon := clk.Now().Add(time.Minute)
	expiring, err := models.IssueToken(t.Context(), s.DB, alice.ID, models.TokenSpec{Name: "soon", Kind: models.KindPersonal,
		Scopes: models.Scopes{"*"}, ExpiresAt: &soon}, policy, false)
	if err != nil {
		t.Fatal(err)
	}
	revoked := s.IssueToken(t, alice)
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: revoked}).Expect(t, http.StatusNoContent)
	deactivated := s.IssueToken(t, bob)
	other := s.IssueToken(t, alice)
	if err := models.SetActive(t.Context(), s.DB, bob, false); err != nil {
		t.Fatal(err)
	}

	body := introspectionOf(t, s.oauthPost(t, "/oauth/introspect", auth, url.Values{"token": {live}, "token_type_hint": {"access_token"}}))
	tok, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, models.HashToken(live))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"active": true, "scope": "orders:read profile:read", "username": "alice",
		"sub": strconv.FormatUint(uint64(alice.ID), 10), "exp": float64(tok.ExpiresAt.Unix()),
		"iat": float64(tok.CreatedAt.Unix()), "jti": strconv.FormatUint(uint64(tok.ID), 10),
		"token_type": "Bearer", "client_id": clientID}
	if len(body) != len(want) {
		t.Errorf("live token: got %v, want %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("live token: %s: got %v, want %v", k, body[k], v)
		}
	}
	// Another user's token is described as well: a resource server asks
	// about whoever calls it.
	if body := introspectionOf(t, s.oauthPost(t, "/oauth/introspect", auth, url.Values{"token": {other}})); body["active"] != true {
		t.Errorf("another live token: got %v, want active", body)
	}

	clk.Advance(2 * time.Minute) // the expiring token expires
	for name, token := range map[string]string{
		"expired": expiring.Secret, "revoked": revoked, "idle": idle, "deactivated user": deactivated,
		"malformed": "tka_nope", "unknown": models.TokenPrefix + strings.Repeat("b", 49), "empty-ish": " ",
		"a client secret": secret,
	} {
		body := introspectionOf(t, s.oauthPost(t, "/oauth/introspect", auth, url.Values{"token": {token}}))
		if len(body) != 1 || body["active"] != false {
			t.Errorf("%s token: got %v, want exactly {\"active\": false}", name, body)
		}
	}
}

func TestIntrospectionNeedsAClient(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	clientID, secret := s.resourceClient(t, "orders-service")
	revokedID, revokedSecret := s.resourceClient(t, "retired")
	if err := models.RevokeClient(t.Context(), s.DB, revokedID); err != nil {
		t.Fatal(err)
	}
	_, token := s.UserWithToken(t, "alice")
	form := url.Values{"token": {token}}
	for name, auth := range map[string]string{
		"none":             "",
		"a wrong secret":   basic(clientID, secret+"x"),
		"an unknown id":    basic("tkc_unknown", secret),
		"a revoked client": basic(revokedID, revokedSecret),
		"a bearer token":   "Bearer " + token,
		"not base64":       "Basic !!!",
		"an id not UTF-8":  "Basic " + base64.StdEncoding.EncodeToString([]byte("tkc_\xff\x00:x")),
	} {
		resp := s.oauthPost(t, "/oauth/introspect", auth, form).Expect(t, http.StatusUnauthorized)
		if string(resp.Body) != `{"error":"invalid_client"}` {
			t.Errorf("%s: body: got %s, want {\"error\":\"invalid_client\"}", name, resp.Body)
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
			t.Errorf("%s: WWW-Authenticate: got %q, want Basic", name, got)
		}
	}
	if got := metric(t, s, `tokenauth_introspections_total{outcome="invalid_client"}`); got != "7" {
		t.Errorf("invalid_client introspections: got %s, want 7", got)
	}

	auth := basic(clientID, secret)
	for name, req := range map[string]Request{
		"no token": {Method: "POST", Path: "/oauth/introspect", Body: "token_type_hint=x",
			Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}},
		"JSON": {Method: "POST", Path: "/oauth/introspect", Body: `{"token":"x"}`,
			Header: map[string]string{"Content-Type": "application/json", "Authorization": auth}},
		"two tokens": {Method: "POST", Path: "/oauth/introspect", Body: "token=a&token=b",
			Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}},
	} {
		resp := s.Do(t, req).Expect(t, http.StatusBadRequest)
		if string(resp.Body) != `{"error":"invalid_request"}` {
			t.Errorf("%s: body: got %s, want {\"error\":\"invalid_request\"}", name, resp.Body)
		}
	}
	introspectionOf(t, s.oauthPost(t, "/oauth/introspect", auth, form))
	if got := metric(t, s, `tokenauth_introspections_total{outcome="active"}`); got != "1" {
		t.Errorf("active introspections: got %s, want 1", got)
	}
}

// An unknown client id costs the statements of a wrong secret (one
// lookup; the secret is hashed and compared in constant time either way),
// so that the answer does not tell which ids exist.
func TestClientAuthenticationEqualWork(t *testing.T) {
	t.Parallel()
	statements := &statementLog{}
	s := NewServer(t, withStatementLog(t, statements))
	clientID, secret := s.resourceClient(t, "orders-service")
	_, token := s.UserWithToken(t, "alice")
	count := func(id string) []string {
		statements.take()
		s.oauthPost(t, "/oauth/introspect", basic(id, secret+"x"), url.Values{"token": {token}}).Expect(t, http.StatusUnauthorized)
		return statements.take()
	}
	known, unknown := count(clientID), count("tkc_unknown")
	if len(known) != 1 || len(unknown) != 1 || known[0] != unknown[0] {
		t.Errorf("statements: a known id %q, an unknown one %q; want the same one lookup", known, unknown)
	}
}

func TestOAuthRevocation(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	clientID, secret := s.resourceClient(t, "orders-service")
	alice, _ := s.UserWithToken(t, "alice")
	byClient := s.IssueToken(t, alice)
	byHolder := s.IssueToken(t, alice)
	byBearer := s.IssueToken(t, alice)

	for _, tc := range []struct{ name, auth, token string }{
		{"a client revokes any token", basic(clientID, secret), byClient},
		{"the holder revokes its own token", "", byHolder},
		{"the holder presents it as its bearer token too", "Bearer " + byBearer, byBearer},
		{"an unknown token", "", models.TokenPrefix + strings.Repeat("c", 49)},
		{"a malformed string", basic(clientID, secret), "not a token"},
		{"again", "", byHolder},
	} {
		resp := s.oauthPost(t, "/oauth/revoke", tc.auth, url.Values{"token": {tc.token}}).Expect(t, http.StatusOK)
		if len(resp.Body) != 0 {
			t.Errorf("%s: body %q, want none", tc.name, resp.Body)
		}
	}
	for _, token := range []string{byClient, byHolder, byBearer} {
		s.Do(t, Request{Path: "/api/auth/check", Token: token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	}
	var events []models.SecurityEvent
	if err := s.DB.Where("user_id = ? AND type = ? AND reason = ?", alice.ID, models.EventTokenRevoked, models.RevokedByOAuth).
		Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Errorf("token_revoked events with reason oauth_revoke: got %d, want 3", len(events))
	}

	// A wrong client is refused, and revokes nothing.
	victim := s.IssueToken(t, alice)
	resp := s.oauthPost(t, "/oauth/revoke", basic(clientID, "wrong"), url.Values{"token": {victim}}).Expect(t, http.StatusUnauthorized)
	if string(resp.Body) != `{"error":"invalid_client"}` {
		t.Errorf("wrong client: body %s", resp.Body)
	}
	s.Do(t, Request{Path: "/api/auth/check", Token: victim}).Expect(t, http.StatusOK)
}

// A string that cannot be a token is answered without any statement.
func TestOAuthRevocationOfMalformedCostsNoQuery(t *testing.T) {
	t.Parallel()
	statements := &statementLog{}
	s := NewServer(t, withStatementLog(t, statements))
	s.oauthPost(t, "/oauth/revoke", "", url.Values{"token": {"tka_malformed"}}).Expect(t, http.StatusOK)
	s.oauthPost(t, "/oauth/revoke", "", url.Values{"token": {models.TokenPrefix + strings.Repeat("d", 49)}}).Expect(t, http.StatusOK)
	if got := statements.take(); len(got) != 0 {
		t.Errorf("statements for strings that are no token: got %q, want none", got)
	}
}

func TestOAuthMetadata(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.PublicURL = "https://auth.example.com/" }))
	var meta map[string]any
	s.Do(t, Request{Path: "/.well-known/oauth-authorization-server"}).Expect(t, http.StatusOK).Decode(t, &meta)
	for k, v := range map[string]string{"issuer": "https://auth.example.com",
		"introspection_endpoint": "https://auth.example.com/oauth/introspect",
		"revocation_endpoint":    "https://auth.example.com/oauth/revoke"} {
		if meta[k] != v {
			t.Errorf("%s: got %v, want %s", k, meta[k], v)
		}
	}
}

// Each client has its own budget: over it, 429 with Retry-After, counted;
// another client is not held back.
func TestIntrospectionIsLimitedPerClient(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithApp(app.WithOAuthClientLimit(2)))
	busyID, busySecret := s.resourceClient(t, "busy")
	calmID, calmSecret := s.resourceClient(t, "calm")
	_, token := s.UserWithToken(t, "alice")
	form := url.Values{"token": {token}}
	for range 2 {
		introspectionOf(t, s.oauthPost(t, "/oauth/introspect", basic(busyID, busySecret), form))
	}
	resp := s.oauthPost(t, "/oauth/introspect", basic(busyID, busySecret), form)
	resp.ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	introspectionOf(t, s.oauthPost(t, "/oauth/introspect", basic(calmID, calmSecret), form))
	if got := metric(t, s, `tokenauth_introspections_total{outcome="rate_limited"}`); got != "1" {
		t.Errorf("rate-limited introspections: got %s, want 1", got)
	}
}
