package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/config"
)

// dial opens a raw connection to the server, for requests no well-behaved
// client would send. The deadline only keeps a broken server from hanging
// the test; no assertion depends on timing.
func (s *Server) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatalf("dialing the server: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	return conn
}

// readResponse reads one response from a raw connection.
func readResponse(t *testing.T, conn net.Conn) *Response {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func TestBodyOverLimitDeclaredIsRefusedUnread(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	conn := s.dial(t)
	// A terabyte is announced and nothing sent: only an answer given
	// without reading the body can arrive.
	fmt.Fprint(conn, "POST /api/login/ HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"+
		"Content-Length: 1099511627776\r\n\r\n")
	readResponse(t, conn).ExpectError(t, http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestBodyOverLimitChunkedIsCutOff(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.MaxBodyBytes = 1024 }))
	conn := s.dial(t)
	fmt.Fprint(conn, "POST /api/login/ HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"+
		"Transfer-Encoding: chunked\r\n\r\n")
	// An endless body, no length announced: the server must stop reading at
	// the limit and answer; if it read on, it would never answer.
	go func() {
		chunk := fmt.Sprintf("100\r\n%s\r\n", strings.Repeat(" ", 0x100))
		for {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
	}()
	readResponse(t, conn).ExpectError(t, http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestBodyAtLimitIsRead(t *testing.T) {
	t.Parallel()
	const limit = 1024
	s := NewServer(t, WithConfig(func(c *config.Config) { c.MaxBodyBytes = limit }))
	body := `{"username":"alice","password":"wrong password"}`
	atLimit := body + strings.Repeat(" ", limit-len(body))
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: atLimit}).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	// Sent chunked (no Content-Length), the same body is read the same way.
	req, _ := http.NewRequest("POST", s.URL+"/api/login/", io.MultiReader(strings.NewReader(atLimit)))
	if got := s.statusOf(t, req); got != http.StatusUnauthorized {
		t.Errorf("chunked body at the limit: status %d, want 401", got)
	}
	overLimit := atLimit + " "
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: overLimit}).ExpectError(t, http.StatusRequestEntityTooLarge, "body_too_large")
	req, _ = http.NewRequest("POST", s.URL+"/api/login/", io.MultiReader(strings.NewReader(overLimit)))
	if got := s.statusOf(t, req); got != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: status %d, want 413", got)
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"string instead of an object", "POST", "/api/tokens/", `"ci"`, 400, "invalid_json", ""},
		{"number instead of an object", "POST", "/api/tokens/", `42`, 400, "invalid_json", ""},
		{"true instead of an object", "PATCH", "/api/profile/", `true`, 400, "invalid_json", ""},
		{"list instead of an object", "POST", "/api/password/", `[]`, 400, "invalid_json", ""},
		{"two objects", "POST", "/api/tokens/", `{"name":"a"}{"name":"b"}`, 400, "invalid_json", ""},
		{"garbage after the object", "PATCH", "/api/profile/", `{"email":"a@example.com"} x`, 400, "invalid_json", ""},
		{"nested beyond reason", "POST", "/api/tokens/", `{"name":` + deep + `}`, 400, "invalid_json", ""},
		{"not UTF-8 JSON", "POST", "/api/tokens/", "\xff\xfe{}", 400, "invalid_json", ""},
		{"unknown field", "POST", "/api/tokens/", `{"name":"ci","owner_id":2}`, 400, "validation_failed", "owner_id"},
		{"unknown field on rename", "PATCH", "/api/tokens/1/", `{"name":"ci","scopes":["*"]}`, 400, "validation_failed", "scopes"},
		{"scopes as a string", "POST", "/api/tokens/", `{"name":"ci","scopes":"profile:read"}`, 400, "validation_failed", "scopes"},
		{"expiry as a string", "POST", "/api/tokens/", `{"name":"ci","expires_in_days":"7"}`, 400, "validation_failed", "expires_in_days"},
		{"expiry as a fraction", "POST", "/api/tokens/", `{"name":"ci","expires_in_days":1.5}`, 400, "validation_failed", "expires_in_days"},
		{"name as a number", "PATCH", "/api/tokens/1/", `{"name":7}`, 400, "validation_failed", "name"},
		{"password as a list", "POST", "/api/password/", `{"current_password":["x"],"new_password":"y"}`, 400, "validation_failed", "current_password"},
		{"email as null", "PATCH", "/api/profile/", `{"email":null}`, 400, "validation_failed", "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: tc.method, Path: tc.path, Token: token, Body: tc.body}).ExpectError(t, tc.wantStatus, tc.wantCode)
			if tc.wantField != "" {
				Field(t, body, tc.wantField)
			}
		})
	}
}

func TestOverlongFieldsAreRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.AllowRegistration = true }))
	_, token := s.UserWithToken(t, "alice")
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name   string
		method string
		path   string
		body   map[string]any
		field  string
	}{
		{"login username", "POST", "/api/login/", map[string]any{"username": long(151), "password": "x"}, "username"},
		{"login password", "POST", "/api/login/", map[string]any{"username": "alice", "password": long(257)}, "password"},
		// 257 four-byte characters: the cap counts characters, and so bounds
		// the bytes the password hash has to chew to 1 KiB.
		{"login password in emoji", "POST", "/api/login/", map[string]any{"username": "alice", "password": strings.Repeat("🔑", 257)}, "password"},
		{"login token name", "POST", "/api/login/", map[string]any{"username": "alice", "password": testPassword, "token_name": long(101)}, "token_name"},
		{"register username", "POST", "/api/register/", map[string]any{"username": long(151), "email": "b@example.com", "password": "a sturdy passphrase 43"}, "username"},
		{"register email", "POST", "/api/register/", map[string]any{"username": "bob", "email": long(250) + "@example.com", "password": "a sturdy passphrase 43"}, "email"},
		{"register password", "POST", "/api/register/", map[string]any{"username": "bob", "email": "b@example.com", "password": long(257)}, "password"},
		{"current password", "POST", "/api/password/", map[string]any{"current_password": long(257), "new_password": "a sturdy passphrase 43"}, "current_password"},
		{"new password", "POST", "/api/password/", map[string]any{"current_password": testPassword, "new_password": long(257)}, "new_password"},
		{"token name", "POST", "/api/tokens/", map[string]any{"name": long(101)}, "name"},
		{"scope", "POST", "/api/tokens/", map[string]any{"name": "ci", "scopes": []string{long(65)}}, "scopes"},
		{"too many scopes", "POST", "/api/tokens/", map[string]any{"name": "ci", "scopes": strings.Split(strings.Repeat("profile:read ", 21), " ")[:21]}, "scopes"},
		{"renamed token", "PATCH", "/api/tokens/1/", map[string]any{"name": long(101)}, "name"},
		{"profile email", "PATCH", "/api/profile/", map[string]any{"email": long(250) + "@example.com"}, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := s.Do(t, Request{Method: tc.method, Path: tc.path, Token: token, Body: tc.body}).ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, tc.field)
		})
	}
	// At the limits, the same fields are fine.
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]any{"username": long(150), "password": strings.Repeat("🔑", 256)}}).
		ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": long(100)}}).Expect(t, http.StatusCreated)
}

func TestTokenInURLIsRefused(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	cases := []struct {
		path    string
		offSpec bool // a path no route has
	}{
		{"/api/profile/?access_token=" + token, false},
		{"/api/profile/?ACCESS_TOKEN=" + token, false},
		{"/api/profile/?access_token=", false},
		{"/api/profile/?token=" + token, false},
		{"/api/profile/?q=x&key=" + strings.Replace(token, "_", "%5F", 1), false},
		// A malformed escape elsewhere in the value does not hide the token.
		{"/api/profile/?key=" + strings.Replace(token, "_", "%5f", 1) + "%zz", false},
		{"/api/profile/?key=%" + strings.Replace(token, "_", "%5F", 1), false},
		{"/api/profile/?access%5Ftoken=x", false},
		{"/api/profile/?q=a+b&" + strings.Replace(token, "_", "%5F", 1) + "=1", false},
		{"/healthz?t=" + token, false},
		{"/api/tokens/" + token + "/", true},
		{"/nowhere/" + token, true},
	}
	for _, tc := range cases {
		path := tc.path
		// With a good Authorization header too: the token in the URL is
		// already exposed, and the client must learn not to send it.
		resp := s.Do(t, Request{Path: path, Token: token, OffSpec: tc.offSpec})
		resp.ExpectError(t, http.StatusBadRequest, "invalid_request")
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_request"`) {
			t.Errorf("%s: WWW-Authenticate %q, want error=\"invalid_request\"", path, got)
		}
	}
	// Ordinary query strings are fine.
	s.Do(t, Request{Path: "/healthz?probe=1", Token: token}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/healthz?probe=%zz&q=a+b%2F&=&&x", Token: token}).Expect(t, http.StatusOK)
	if logs := s.Logs.String(); strings.Contains(logs, token) || strings.Contains(logs, token[4:20]) {
		t.Errorf("the token reached the logs:\n%s", logs)
	}
}

// A key imported from Django is a secret like a tka_ token: in the path or
// anywhere in the query string it is refused and withheld from the logs,
// while other hex, such as a 32-character id, passes.
func TestImportedKeyInURLIsRefused(t *testing.T) {
	t.Parallel()
	s, d := importedServer(t, djangoFixture)
	apiKey := d.apiToken(t, "Phone").Key // 64 hex characters
	authKey := d.AuthTokens[0].Key       // 40
	s.Do(t, Request{Path: "/api/profile/", Token: apiKey}).Expect(t, http.StatusOK)
	s.Do(t, Request{Path: "/api/profile/", Token: authKey}).Expect(t, http.StatusOK)
	refused := []struct {
		path    string
		offSpec bool
	}{
		{"/api/profile/?key=" + apiKey, false},
		{"/api/profile/?token=" + authKey, false},
		{"/api/profile/?token=" + strings.ToUpper(authKey), false},
		{"/api/profile/?" + apiKey, false},
		{"/api/profile/?q=x&next=%2Fback%2F" + apiKey + "%2Fto", false},
		{"/api/articles/?page=1&file=key-" + authKey + ".txt", false},
		{"/healthz?t=" + apiKey, false},
		{"/api/tokens/" + apiKey + "/", true},
		{"/nowhere/" + authKey, true},
		{"/nowhere/x" + apiKey + "y", true},
	}
	for _, tc := range refused {
		resp := s.Do(t, Request{Path: tc.path, Token: apiKey, OffSpec: tc.offSpec})
		resp.ExpectError(t, http.StatusBadRequest, "invalid_request")
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_request"`) {
			t.Errorf("%s: WWW-Authenticate %q, want error=\"invalid_request\"", tc.path, got)
		}
	}
	// Hex that no imported key looks like is fine: ids, hashes of other
	// lengths, a key's length in upper case (keys are lower case).
	for _, path := range []string{
		"/healthz?id=" + randomKey(t, 16),
		"/healthz?id=" + randomKey(t, 16) + "&sha512=" + randomKey(t, 64),
		"/healthz?x=" + apiKey[:63],
		"/healthz?x=" + apiKey + "0",
		"/healthz?x=" + strings.ToUpper(apiKey),
	} {
		s.Do(t, Request{Path: path, Token: apiKey}).Expect(t, http.StatusOK)
	}
	s.Do(t, Request{Path: "/nowhere/" + randomKey(t, 16), OffSpec: true}).ExpectError(t, http.StatusNotFound, "not_found")
	// A key sent as a request id is not echoed or logged either.
	resp := s.Do(t, Request{Path: "/healthz", Header: map[string]string{"X-Request-ID": authKey}}).Expect(t, http.StatusOK)
	if got := resp.Header.Get("X-Request-ID"); got == authKey || got == "" {
		t.Errorf("X-Request-ID: got %q, want a fresh id in place of the key", got)
	}
	logs := s.Logs.String()
	for _, key := range []string{apiKey, authKey} {
		if strings.Contains(logs, key[:20]) || strings.Contains(strings.ToLower(logs), strings.ToLower(key[20:])) {
			t.Errorf("the key %s... reached the logs:\n%s", key[:8], logs)
		}
	}
	if !strings.Contains(logs, "[path withheld: it holds a token]") {
		t.Errorf("no request line withheld its path:\n%s", logs)
	}
}

func TestOversizedHeadersGet431(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	ok := s.Do(t, Request{Path: "/healthz", Header: map[string]string{"X-Padding": strings.Repeat("a", 8<<10)}})
	ok.Expect(t, http.StatusOK)
	big := s.Do(t, Request{Path: "/healthz", Header: map[string]string{"X-Padding": strings.Repeat("a", 64<<10)}})
	big.Expect(t, http.StatusRequestHeaderFieldsTooLarge)
}

// TestHeaderLimitIs16KiB holds the documented limit to the byte: the
// request line and headers, up to the blank line that ends them, may be
// 16 KiB and no more (Go reads 4 KiB past http.Server.MaxHeaderBytes, so
// that setting alone would let 20 KiB through).
func TestHeaderLimitIs16KiB(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	const limit = 16 << 10
	cases := []struct {
		size int
		want int
	}{
		{limit - 100, http.StatusOK},
		{limit, http.StatusOK},
		{limit + 1, http.StatusRequestHeaderFieldsTooLarge},
		{limit + 100, http.StatusRequestHeaderFieldsTooLarge},
		{limit + 4<<10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range cases {
		head := requestHeadOfSize(t, tc.size)
		conn := s.dial(t)
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatalf("%d bytes: writing the request: %v", tc.size, err)
		}
		if got := readResponse(t, conn).Status; got != tc.want {
			t.Errorf("a request head of %d bytes: status %d, want %d", tc.size, got, tc.want)
		}
	}
}

// requestHeadOfSize is a GET /healthz whose request line and headers,
// blank line included, are exactly size bytes.
func requestHeadOfSize(t *testing.T, size int) string {
	t.Helper()
	const start, end = "GET /healthz HTTP/1.1\r\nHost: api\r\nX-Padding: ", "\r\nConnection: close\r\n\r\n"
	pad := size - len(start) - len(end)
	if pad < 1 {
		t.Fatalf("no request head is as short as %d bytes", size)
	}
	head := start + strings.Repeat("a", pad) + end
	if len(head) != size {
		t.Fatalf("built a head of %d bytes, want %d", len(head), size)
	}
	return head
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.ReadHeaderTimeout = 200 * time.Millisecond }))
	conn := s.dial(t)
	// Half a request, and then nothing: the server must hang up rather than
	// keep the connection for as long as the client likes.
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: api\r\n")
	n, err := conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection open for a minute without the headers")
	}
	if err == nil {
		t.Fatalf("the server answered (%d bytes) a request whose headers never ended", n)
	}
}
