package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"tokenauth/config"
	"tokenauth/docs"
	"tokenauth/models"
)

// errorRecorder stands in for a test to see what Server.Do reports.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestContractFailsARouteMissingFromTheSpec shows the check that every
// test gets through Server.Do: a route the service serves but the spec
// does not describe is a failure.
func TestContractFailsARouteMissingFromTheSpec(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRoutes(func(r *gin.Engine) {
		r.GET("/api/undocumented/", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) })
	}))

	rec := &errorRecorder{TB: t}
	s.Do(rec, Request{Path: "/api/undocumented/"}).Expect(t, http.StatusOK)
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "GET /api/undocumented/ answered 200: is not in docs/openapi.yaml") {
		t.Errorf("Do reported %q, want one error saying the route is not in the spec", rec.errors)
	}

	// Marked as a deliberate probe, the same request passes.
	rec = &errorRecorder{TB: t}
	s.Do(rec, Request{Path: "/api/undocumented/", OffSpec: true}).Expect(t, http.StatusOK)
	if len(rec.errors) != 0 {
		t.Errorf("Do reported %q for a request marked OffSpec", rec.errors)
	}
}

// TestContractSeesABodyAnsweredToHead shows that a HEAD answer is read off
// the wire: a handler that sends a body to HEAD (net/http never does, so
// this one writes to the connection itself) fails the check.
func TestContractSeesABodyAnsweredToHead(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithRoutes(func(r *gin.Engine) {
		r.HEAD("/api/chatty/", func(c *gin.Context) {
			conn, buf, err := c.Writer.Hijack()
			if err != nil {
				t.Errorf("hijacking: %v", err)
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
			buf.Flush()
		})
	}))

	rec := &errorRecorder{TB: t}
	s.Do(rec, Request{Method: "HEAD", Path: "/api/chatty/", OffSpec: true}).Expect(t, http.StatusOK)
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "the answer to HEAD has a body (5 bytes)") {
		t.Errorf("Do reported %q, want one error saying the answer to HEAD has a body", rec.errors)
	}
}

// TestContractCheck runs the validator on exchanges made up to break one
// rule each, and on one that breaks none.
func TestContractCheck(t *testing.T) {
	t.Parallel()
	spec := NewServer(t).contract
	jsonHeader := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"4f1c2b"}}
	without := func(h http.Header, name string) http.Header {
		h = h.Clone()
		h.Del(name)
		return h
	}
	with := func(h http.Header, name, value string) http.Header {
		h = h.Clone()
		h.Set(name, value)
		return h
	}
	unauthorized := jsonHeader.Clone()
	unauthorized.Set("WWW-Authenticate", `Bearer realm="api"`)
	allowHeader := func(allow string) http.Header { return with(jsonHeader, "Allow", allow) }
	validUser := `{"id":1,"username":"alice","email":"alice@example.com","email_verified":false,"mfa_enabled":false,"is_active":true,"created_at":"2025-01-31T12:00:00Z","last_login_at":null}`

	cases := []struct {
		name    string
		req     Request
		resp    Response
		wantErr string // "" when the exchange is valid
	}{
		{"valid exchange", Request{Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(validUser)}, ""},
		{"valid without the trailing slash", Request{Path: "/api/profile", Token: "x"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(validUser)}, ""},
		{"route missing from the spec", Request{Path: "/api/nowhere/"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{}`)}, "is not in docs/openapi.yaml"},
		{"method missing from the spec", Request{Method: "PUT", Path: "/api/profile/"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{}`)}, "is not in docs/openapi.yaml"},
		{"OffSpec on a described route", Request{Path: "/healthz", OffSpec: true},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{"status":"ok"}`)}, "is marked OffSpec"},
		{"OffSpec answered with something else than an error body", Request{Path: "/api/nowhere/", OffSpec: true},
			Response{Status: 404, Header: jsonHeader, Body: []byte(`{"message":"no"}`)}, "does not match"},
		{"status the operation does not list", Request{Path: "/healthz"},
			Response{Status: 418, Header: jsonHeader, Body: []byte(`{}`)}, "status is not supported"},
		{"body that breaks the schema", Request{Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{"id":"1","username":"alice"}`)}, "doesn't match schema"},
		{"field the schema does not have", Request{Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(strings.Replace(validUser, `"id":1`, `"id":1,"password_hash":"x"`, 1))}, "doesn't match schema"},
		{"time not in UTC", Request{Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(strings.Replace(validUser, "12:00:00Z", "12:00:00+02:00", 1))}, "doesn't match schema"},
		{"error code the status does not have", Request{Path: "/api/profile/"},
			Response{Status: 401, Header: unauthorized, Body: []byte(`{"error":"no","code":"not_found"}`)}, "doesn't match schema"},
		{"required header missing", Request{Path: "/api/profile/"},
			Response{Status: 401, Header: jsonHeader, Body: []byte(`{"error":"no","code":"invalid_token"}`)}, `"WWW-Authenticate" missing`},
		{"wrong content type", Request{Path: "/healthz"},
			Response{Status: 200, Header: with(jsonHeader, "Content-Type", "text/html"), Body: []byte(`ok`)}, "Content-Type"},
		{"success without X-Request-ID", Request{Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: without(jsonHeader, "X-Request-Id"), Body: []byte(validUser)}, `"X-Request-ID" missing`},
		{"error without X-Request-ID", Request{Path: "/api/profile/"},
			Response{Status: 401, Header: without(unauthorized, "X-Request-Id"), Body: []byte(`{"error":"no","code":"invalid_token"}`)}, `"X-Request-ID" missing`},
		{"X-Request-ID the service would not make", Request{Path: "/healthz"},
			Response{Status: 200, Header: with(jsonHeader, "X-Request-Id", "a b"), Body: []byte(`{"status":"ok"}`)}, `"X-Request-ID"`},
		{"HEAD held to its GET", Request{Method: "HEAD", Path: "/api/profile/", Token: "x"},
			Response{Status: 200, Header: jsonHeader}, ""},
		{"HEAD answered with a body", Request{Method: "HEAD", Path: "/healthz"},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{"status":"ok"}`)}, "the answer to HEAD has a body"},
		{"HEAD with a status its GET does not have", Request{Method: "HEAD", Path: "/healthz"},
			Response{Status: 418, Header: jsonHeader}, "status is not supported"},
		{"HEAD without a header its GET must have", Request{Method: "HEAD", Path: "/api/profile/"},
			Response{Status: 401, Header: jsonHeader}, `"WWW-Authenticate" missing`},
		{"405 listing the spec's methods", Request{Method: "PUT", Path: "/api/profile", OffSpec: true},
			Response{Status: 405, Header: allowHeader("PATCH, GET, HEAD"), Body: []byte(`{"error":"no","code":"method_not_allowed"}`)}, ""},
		{"405 leaving out HEAD", Request{Method: "PUT", Path: "/api/profile/", OffSpec: true},
			Response{Status: 405, Header: allowHeader("GET, PATCH"), Body: []byte(`{"error":"no","code":"method_not_allowed"}`)}, "405 with Allow"},
		{"405 listing a method the spec does not give the path", Request{Method: "PUT", Path: "/healthz", OffSpec: true},
			Response{Status: 405, Header: allowHeader("GET, HEAD, DELETE"), Body: []byte(`{"error":"no","code":"method_not_allowed"}`)}, "405 with Allow"},
		{"405 without Allow", Request{Method: "PUT", Path: "/healthz", OffSpec: true},
			Response{Status: 405, Header: jsonHeader, Body: []byte(`{"error":"no","code":"method_not_allowed"}`)}, "405 with Allow"},
		{"success for a request the spec forbids", Request{Method: "POST", Path: "/api/login/", Body: map[string]any{"username": "alice", "password": "x", "admin": true}},
			Response{Status: 200, Header: jsonHeader, Body: []byte(`{}`)}, "accepted a request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, body := newHTTPRequest(t, "http://127.0.0.1:8080", tc.req)
			err := spec.check(req, body, &tc.resp, tc.req.OffSpec)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("got no error, want one containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// ginPath turns a Gin path into a request path for the spec's lookup.
func ginPath(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = "1"
		}
	}
	return strings.Join(parts, "/")
}

// TestEveryRouteIsInTheSpec walks the router itself, so a route no test
// calls still has to be described.
func TestEveryRouteIsInTheSpec(t *testing.T) {
	t.Parallel()
	checkEveryRouteIsInTheSpec(t, NewServer(t))
}

func checkEveryRouteIsInTheSpec(t *testing.T, s *Server) {
	served := s.Router.Routes()
	if len(served) == 0 {
		t.Fatal("the router has no routes")
	}
	for _, r := range served {
		req, err := http.NewRequest(r.Method, "http://127.0.0.1:8080"+ginPath(r.Path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.contract.findRoute(req); err != nil {
			t.Errorf("%s %s: %v", r.Method, r.Path, err)
		}
	}
}

// TestSpecScopesMatchTheRoutes holds x-required-scope to what each served
// route enforces: no token is 401, a token without the scope is 403 naming
// it, and a token with just that scope gets past both.
func TestSpecScopesMatchTheRoutes(t *testing.T) {
	t.Parallel()
	checkSpecScopesMatchTheRoutes(t, NewServer(t, WithConfig(func(c *config.Config) { c.MaxTokensPerUser = 10000 })))
}

func checkSpecScopesMatchTheRoutes(t *testing.T, s *Server) {
	spec := s.contract
	user := s.CreateUser(t, "alice", testPassword)
	openAPIParam := regexp.MustCompile(`\{(\w+)\}`)
	served := map[string]bool{}
	for _, r := range s.Router.Routes() {
		served[r.Method+" "+strings.TrimSuffix(r.Path, "/")] = true
	}

	scopeEnum := map[string]bool{}
	for _, v := range spec.doc.Components.Schemas["Scope"].Value.Enum {
		scopeEnum[v.(string)] = true
	}
	required := map[string]bool{"*": true}
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-required-scope"].(string)
			if scope != "" {
				required[scope] = true
				if !scopeEnum[scope] {
					t.Errorf("%s %s: x-required-scope %q is not in components.schemas.Scope", method, path, scope)
				}
			}
			if scope != "" && (op.Security == nil || len(*op.Security) == 0) {
				t.Errorf("%s %s: x-required-scope without a security requirement", method, path)
			}
			ginStyle := strings.TrimSuffix(openAPIParam.ReplaceAllString(path, ":$1"), "/")
			if !served[method+" "+ginStyle] {
				t.Errorf("%s %s is in the spec but not served", method, path)
				continue
			}
			t.Run(method+" "+path, func(t *testing.T) {
				checkScope(t, s, user, method, strings.ReplaceAll(path, "{id}", "1"), scope, op.Security != nil && len(*op.Security) > 0)
			})
		}
	}
	for scope := range scopeEnum {
		if !required[scope] {
			t.Errorf("components.schemas.Scope lists %q, which no operation requires", scope)
		}
	}
}

func checkScope(t *testing.T, s *Server, user *models.User, method, path, scope string, secured bool) {
	if !secured {
		resp := s.Do(t, Request{Method: method, Path: path})
		if resp.Status == http.StatusUnauthorized && bytes.Contains(resp.Body, []byte("authentication_required")) {
			t.Errorf("the spec names no security, but the route asks for a token")
		}
		return
	}
	s.Do(t, Request{Method: method, Path: path}).ExpectError(t, http.StatusUnauthorized, "authentication_required")

	// A token without the scope is refused, naming it.
	other := "profile:read"
	if scope == "profile:read" {
		other = "articles:read"
	}
	if scope != "" {
		resp := s.Do(t, Request{Method: method, Path: path, Token: s.IssueToken(t, user, other)})
		resp.ExpectError(t, http.StatusForbidden, "insufficient_scope")
		if got, want := resp.Header.Get("WWW-Authenticate"), `scope="`+scope+`"`; !strings.Contains(got, want) {
			t.Errorf("WWW-Authenticate: got %q, want it to contain %s", got, want)
		}
	}

	// A token with just the scope (any token, when none is required) gets
	// past authentication and the scope check.
	enough := other
	if scope != "" {
		enough = scope
	}
	resp := s.Do(t, Request{Method: method, Path: path, Token: s.IssueToken(t, user, enough)})
	if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
		t.Errorf("a token with scope %q: got %d %s", enough, resp.Status, resp.Body)
	}
}

// TestServedSpecIsTheContract checks that GET /api/openapi.yaml serves the
// very document the tests enforce.
func TestServedSpecIsTheContract(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for _, path := range []string{"/api/openapi.yaml", "/api/openapi.yaml/"} {
		resp := s.Do(t, Request{Path: path}).Expect(t, http.StatusOK)
		if !bytes.Equal(resp.Body, docs.OpenAPI(s.scopes(t))) {
			t.Errorf("%s: the served document is not docs/openapi.yaml with the service's scopes", path)
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "application/yaml") {
			t.Errorf("%s: Content-Type: got %q, want application/yaml", path, got)
		}
	}
}

// TestSpecDescribesTheRequestID holds every path of the spec to the
// X-Request-ID that any request may send and every response carries (but
// a 431, which the server sends before any route runs). The contract check
// enforces a header only where the spec declares it, so a path added
// without it would go unchecked, and unknown to the clients generated
// from the document.
func TestSpecDescribesTheRequestID(t *testing.T) {
	t.Parallel()
	doc := NewServer(t).contract.doc
	takesRequestID := func(params openapi3.Parameters) bool {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInHeader && p.Value.Name == "X-Request-ID" {
				return true
			}
		}
		return false
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !takesRequestID(item.Parameters) && !takesRequestID(op.Parameters) {
				t.Errorf("%s %s: no X-Request-ID parameter (components.parameters.RequestID)", method, path)
			}
			for status, resp := range op.Responses.Map() {
				if status != "431" && resp.Value.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s %s: no X-Request-ID header (components.headers.RequestID)", method, path, status)
				}
			}
		}
	}
	for name, resp := range doc.Components.Responses {
		if name != "HeadersTooLarge" && resp.Value.Headers["X-Request-ID"] == nil {
			t.Errorf("components.responses.%s: no X-Request-ID header", name)
		}
	}
}
