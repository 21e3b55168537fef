package tests

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"tokenauth/config"
	"tokenauth/models"
)

// withExtraScopes serves the scopes of services behind a proxy.
func withExtraScopes(scopes ...string) Option {
	return WithConfig(func(c *config.Config) { c.ExtraScopes = scopes })
}

func TestForwardAuthCheckAnswers(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withExtraScopes("orders:read", "orders:write"))
	user, login := s.UserWithToken(t, "alice")
	orders := s.IssueToken(t, user, "orders:read")
	profile := s.IssueToken(t, user, "profile:read")
	revoked := s.IssueToken(t, user, "orders:read")
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: revoked}).Expect(t, http.StatusNoContent)

	cases := []struct {
		name, method, path, token string
		header                    map[string]string
		body                      any
		wantStatus                int
		wantError                 string
	}{
		{"login token, no scope asked", "GET", "/api/auth/check", login, nil, nil, 200, ""},
		{"login token holds every scope", "GET", "/api/auth/check?scope=orders:read&scope=orders:write", login, nil, nil, 200, ""},
		{"narrow token with its scope", "GET", "/api/auth/check/?scope=orders:read", orders, nil, nil, 200, ""},
		{"POST, as Envoy forwards it", "POST", "/api/auth/check?scope=orders:read", orders, nil, nil, 200, ""},
		{"PUT", "PUT", "/api/auth/check", orders, nil, nil, 200, ""},
		{"PATCH", "PATCH", "/api/auth/check", orders, nil, nil, 200, ""},
		{"DELETE", "DELETE", "/api/auth/check", orders, nil, nil, 200, ""},
		{"OPTIONS", "OPTIONS", "/api/auth/check", orders, nil, nil, 200, ""},
		{"HEAD", "HEAD", "/api/auth/check", orders, nil, nil, 200, ""},
		{"a path below, as Envoy appends it", "DELETE", "/api/auth/check/orders?scope=orders:read", orders, nil, nil, 200, ""},
		{"a browser's Origin copied by the proxy", "GET", "/api/auth/check?scope=orders:read", orders,
			map[string]string{"Origin": "https://elsewhere.example"}, nil, 200, ""},
		{"no token", "GET", "/api/auth/check", "", nil, nil, 401, "authentication_required"},
		{"no token, a path below", "POST", "/api/auth/check/x", "", nil, nil, 401, "authentication_required"},
		{"revoked token", "GET", "/api/auth/check", revoked, nil, nil, 401, "invalid_token"},
		{"made-up token", "GET", "/api/auth/check", models.TokenPrefix + strings.Repeat("a", 49), nil, nil, 401, "invalid_token"},
		{"a scope missing", "GET", "/api/auth/check?scope=orders:read&scope=orders:write", orders, nil, nil, 403, "insufficient_scope"},
		{"another scope", "GET", "/api/auth/check?scope=orders:read", profile, nil, nil, 403, "insufficient_scope"},
		{"scopes separated by a space", "GET", "/api/auth/check?scope=orders:read+orders:write", orders, nil, nil, 403, "insufficient_scope"},
		{"a scope parameter that names nothing", "GET", "/api/auth/check?scope=a%22b", login, nil, nil, 403, "invalid_scope"},
		{"an empty scope parameter", "GET", "/api/auth/check?scope=", login, nil, nil, 403, "invalid_scope"},
		{"malformed Authorization, 400 elsewhere", "GET", "/api/auth/check", "", map[string]string{"Authorization": "Bearer a b"}, nil, 401, "invalid_request"},
		{"a body over the limit, 413 elsewhere", "POST", "/api/auth/check", orders, nil, strings.Repeat("x", 1<<20+1), 401, "body_too_large"},
		{"a token in the URL, 400 elsewhere", "GET", "/api/auth/check?access_token=x", orders, nil, nil, 401, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(t, Request{Method: tc.method, Path: tc.path, Token: tc.token, Header: tc.header, Body: tc.body})
			if resp.Status != tc.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", resp.Status, tc.wantStatus, resp.Body)
			}
			if got := resp.Header.Get("X-Auth-Error"); got != tc.wantError {
				t.Errorf("X-Auth-Error: got %q, want %q", got, tc.wantError)
			}
			if tc.wantStatus == 200 {
				if len(resp.Body) != 0 {
					t.Errorf("body: got %q, want none", resp.Body)
				}
				if got, want := resp.Header.Get("X-Auth-User-Id"), strconv.FormatUint(uint64(user.ID), 10); got != want {
					t.Errorf("X-Auth-User-Id: got %q, want %q", got, want)
				}
				if got := resp.Header.Get("X-Auth-Username"); got != "alice" {
					t.Errorf("X-Auth-Username: got %q, want alice", got)
				}
				// The answer is for the proxy, which passes X-Auth-* on:
				// none of the headers of an answer to a client.
				for _, name := range []string{"Token-Expires-At", "Cache-Control", "Content-Security-Policy",
					"X-Content-Type-Options", "Referrer-Policy"} {
					if got := resp.Header.Values(name); len(got) != 0 {
						t.Errorf("%s: got %q, want none", name, got)
					}
				}
				if resp.Header.Get("X-Auth-Expires-At") == "" {
					t.Error("no X-Auth-Expires-At")
				}
				return
			}
			// A refusal may reach the proxy's client (Traefik, Caddy and
			// Envoy pass it on): it carries the API's security headers.
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
				t.Errorf("Content-Security-Policy: got %q", got)
			}
			if tc.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="api"`) {
				t.Errorf("WWW-Authenticate: got %q, want the API's Bearer challenge", resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get("X-Auth-User-Id") != "" {
				t.Errorf("a refusal names a user: %q", resp.Header.Get("X-Auth-User-Id"))
			}
		})
	}
}

// The headers name the token and its user exactly, and a missing scope is
// named in the challenge as on the API's own routes.
func TestForwardAuthCheckHeaders(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withExtraScopes("orders:read", "orders:write"))
	user := s.CreateUser(t, "bob", testPassword)
	secret := s.IssueToken(t, user, "orders:read", "orders:write")
	id := s.tokenID(t, secret)
	resp := s.Do(t, Request{Path: "/api/auth/check?scope=orders:read", Token: secret}).Expect(t, http.StatusOK)
	tok, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, models.HashToken(secret))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Auth-User-Id":    strconv.FormatUint(uint64(user.ID), 10),
		"X-Auth-Username":   "bob",
		"X-Auth-Scopes":     "orders:read orders:write",
		"X-Auth-Token-Id":   strconv.FormatUint(uint64(id), 10),
		"X-Auth-Expires-At": tok.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00"),
	}
	for name, value := range want {
		if got := resp.Header.Get(name); got != value {
			t.Errorf("%s: got %q, want %q", name, got, value)
		}
	}
	resp = s.Do(t, Request{Path: "/api/auth/check?scope=billing:read", Token: secret}).Expect(t, http.StatusForbidden)
	if got, want := resp.Header.Get("WWW-Authenticate"), `scope="billing:read"`; !strings.Contains(got, want) {
		t.Errorf("WWW-Authenticate: got %q, want it to name %s", got, want)
	}
}

// A check is answered from the token cache and records the token's use,
// like any request.
func TestForwardAuthCheckIsCachedAndRecordsUse(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	user := s.CreateUser(t, "carol", testPassword)
	secret := s.IssueToken(t, user, "profile:read")
	s.expectCached(t, secret)
	before := s.Resolver.Stats()
	s.Do(t, Request{Path: "/api/auth/check?scope=profile:read", Token: secret}).Expect(t, http.StatusOK)
	after := s.Resolver.Stats()
	if after.CacheHits != before.CacheHits+1 || after.CacheMisses != before.CacheMisses {
		t.Errorf("cache: hits %d -> %d, misses %d -> %d; want one more hit and no miss",
			before.CacheHits, after.CacheHits, before.CacheMisses, after.CacheMisses)
	}
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok, err := models.FindTokenByHash(t.Context(), s.DB, s.Pool, models.HashToken(secret))
	if err != nil {
		t.Fatal(err)
	}
	if tok.LastUsedAt == nil {
		t.Error("last_used_at: got nil, want the check's use recorded")
	}
}

// Checks are counted by outcome on the metrics listener.
func TestForwardAuthCheckMetrics(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "dave")
	s.Do(t, Request{Path: "/api/auth/check", Token: login}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/auth/check", Token: login}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/auth/check"}).Expect(t, http.StatusUnauthorized)
	s.Do(t, Request{Path: "/api/auth/check?scope=x%00"}).Expect(t, http.StatusUnauthorized)
	for name, want := range map[string]string{
		`tokenauth_gateway_checks_total{outcome="allowed"}`:                 "2",
		`tokenauth_gateway_checks_total{outcome="authentication_required"}`: "2",
	} {
		if got := metric(t, s, name); got != want {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
}

// EXTRA_SCOPES puts the scopes of other services in the catalogue: a token
// may be made with them, and the served document lists them.
func TestExtraScopesJoinTheCatalogue(t *testing.T) {
	t.Parallel()
	s := NewServer(t, withExtraScopes("billing:read"))
	_, login := s.UserWithToken(t, "erin")
	resp := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login,
		Body: map[string]any{"name": "billing", "scopes": []string{"billing:read"}}}).Expect(t, http.StatusCreated)
	secret, _ := resp.JSON(t)["token"].(string)
	s.Do(t, Request{Path: "/api/auth/check?scope=billing:read", Token: secret}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: secret}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
	served := s.Do(t, Request{Path: "/api/openapi.yaml"}).Expect(t, http.StatusOK).Body
	doc, err := openapi3.NewLoader().LoadFromData(served)
	if err != nil {
		t.Fatal(err)
	}
	if enum := doc.Components.Schemas["Scope"].Value.Enum; !slices.Contains(enum, any("billing:read")) {
		t.Errorf("the served components.schemas.Scope lists %v, without billing:read", enum)
	}
	page := string(s.Do(t, Request{Path: "/"}).Expect(t, http.StatusOK).Body)
	if !strings.Contains(page, `name="scopes" value="billing:read"`) {
		t.Error("the page does not offer billing:read")
	}

	plain := NewServer(t)
	_, other := plain.UserWithToken(t, "erin")
	plain.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: other,
		Body: map[string]any{"name": "billing", "scopes": []string{"billing:read"}}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
}

// A path of several segments below the check is answered like one: Envoy
// appends the whole path it checks. OpenAPI cannot spell such a path, so
// this request leaves the document.
func TestForwardAuthCheckTakesAnyPathBelow(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, login := s.UserWithToken(t, "frank")
	for _, path := range []string{"/api/auth/check/orders/7/items", "/api/auth/check/a/b/c/?x=1"} {
		resp := s.Do(t, Request{Method: "PATCH", Path: path, Token: login, OffSpec: true}).Expect(t, http.StatusOK)
		if resp.Header.Get("X-Auth-Username") != "frank" {
			t.Errorf("%s: X-Auth-Username: got %q, want frank", path, resp.Header.Get("X-Auth-Username"))
		}
		s.Do(t, Request{Method: "PATCH", Path: path, OffSpec: true}).Expect(t, http.StatusUnauthorized)
	}
}

// A database that does not answer is a 401 for the proxy, never a 503
// (which nginx would turn into a 500): unavailable in X-Auth-Error, with
// Retry-After. Introspection answers 503 as the API does.
func TestForwardAuthCheckDuringAnOutage(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithDatabaseSwitch())
	clientID, secret := s.resourceClient(t, "orders-service")
	_, token := s.UserWithToken(t, "alice")
	s.StopDatabase(t)
	waitFor(t, "the token cache to go off", func() bool { return !s.Resolver.Stats().CacheEnabled })
	resp := s.Do(t, Request{Path: "/api/auth/check", Token: token}).Expect(t, http.StatusUnauthorized)
	if got := resp.Header.Get("X-Auth-Error"); got != "unavailable" {
		t.Errorf("X-Auth-Error: got %q, want unavailable", got)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After: got %q, want 1", got)
	}
	if got := metric(t, s, `tokenauth_gateway_checks_total{outcome="unavailable"}`); got != "1" {
		t.Errorf("unavailable checks: got %s, want 1", got)
	}
	s.oauthPost(t, "/oauth/introspect", basic(clientID, secret), url.Values{"token": {token}}).
		ExpectError(t, http.StatusServiceUnavailable, "unavailable")
}

// A token limited to some networks: the check judges the client's address
// that the trusted proxy names in X-Forwarded-For; introspection, which
// cannot know the holder's address, does not apply the limit.
func TestAllowedNetworksAtTheCheckNotInIntrospection(t *testing.T) {
	t.Parallel()
	s := NewServer(t, behindProxy())
	clientID, secret := s.resourceClient(t, "orders-service")
	_, admin := s.UserWithToken(t, "alice")
	var tok tokenView
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: admin,
		Body: map[string]any{"name": "office", "allowed_ips": []string{"203.0.113.0/24"}}}).Expect(t, http.StatusCreated).Decode(t, &tok)

	s.Do(t, from("/api/auth/check", tok.Token, "203.0.113.9")).Expect(t, http.StatusOK)
	resp := s.Do(t, from("/api/auth/check", tok.Token, "198.51.100.1")).Expect(t, http.StatusForbidden)
	if got := resp.Header.Get("X-Auth-Error"); got != "ip_not_allowed" {
		t.Errorf("X-Auth-Error: got %q, want ip_not_allowed", got)
	}
	body := introspectionOf(t, s.oauthPost(t, "/oauth/introspect", basic(clientID, secret), url.Values{"token": {tok.Token}}))
	if body["active"] != true {
		t.Errorf("introspection of a token limited to other networks: got %v, want active", body)
	}

	// A paused token is refused at the check and inactive to introspection.
	s.Do(t, Request{Method: "PATCH", Path: "/api/tokens/" + itoa(s.tokenID(t, tok.Token)) + "/", Token: admin,
		Body: map[string]bool{"enabled": false}}).Expect(t, http.StatusOK)
	resp = s.Do(t, from("/api/auth/check", tok.Token, "203.0.113.9"))
	if resp.Status != http.StatusUnauthorized && resp.Status != http.StatusForbidden || resp.Header.Get("X-Auth-Error") == "" {
		t.Errorf("a paused token at the check: got %d, X-Auth-Error %q; want 401 or 403 naming why",
			resp.Status, resp.Header.Get("X-Auth-Error"))
	}
	body = introspectionOf(t, s.oauthPost(t, "/oauth/introspect", basic(clientID, secret), url.Values{"token": {tok.Token}}))
	if len(body) != 1 || body["active"] != false {
		t.Errorf("introspection of a paused token: got %v, want exactly {\"active\": false}", body)
	}
}
