//go:build tools

package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
)

// The proxies of docs/GATEWAY.md, run for real in front of the service:
// the snippets are read from the document itself, so what it shows is
// what the tests run. Only the addresses change.
const (
	docTokenauthAddr = "127.0.0.1:8080"
	docUpstreamAddr  = "127.0.0.1:9000"
)

// gatewaySnippet returns the first code block of docs/GATEWAY.md in lang.
func gatewaySnippet(t *testing.T, lang string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/GATEWAY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```"+lang+"\n")
	if !ok {
		t.Fatalf("docs/GATEWAY.md has no %s block", lang)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("docs/GATEWAY.md: the %s block does not end", lang)
	}
	return block
}

// echoUpstream is the service behind the proxy: it answers every request
// with the headers it received, as JSON.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// runProxy starts a proxy's command and stops it when the test ends; it
// returns once addr accepts connections.
func runProxy(t *testing.T, cmd *osexec.Cmd, addr string, logFile string) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// SIGTERM: nginx's master stops its workers before it exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s exited: %v\n%s", cmd.Path, waitErr, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s does not listen on %s\n%s", cmd.Path, addr, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startNginx runs Debian's nginx with the nginx block of docs/GATEWAY.md,
// in front of s and upstream, and returns its base URL.
func startNginx(t *testing.T, s *Server, upstream string) string {
	t.Helper()
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nginx is not installed (apt-get install nginx-light): %v", err)
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + freePort(t)
	server := gatewaySnippet(t, "nginx")
	server = strings.NewReplacer("127.0.0.1:8000", addr, docTokenauthAddr, strings.TrimPrefix(s.URL, "http://"),
		docUpstreamAddr, upstream).Replace(server)
	conf := fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", path, "-g", "daemon off;")
	runProxy(t, cmd, addr, filepath.Join(dir, "error.log"))
	return "http://" + addr
}

// startCaddy runs Debian's Caddy with the caddyfile block of
// docs/GATEWAY.md, in front of s and upstream, and returns its base URL.
func startCaddy(t *testing.T, s *Server, upstream string) string {
	t.Helper()
	bin, err := osexec.LookPath("caddy")
	if err != nil {
		t.Fatalf("caddy is not installed (apt-get install caddy): %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	site := gatewaySnippet(t, "caddyfile")
	site = strings.NewReplacer(":8001", ":"+port, docTokenauthAddr, strings.TrimPrefix(s.URL, "http://"),
		docUpstreamAddr, upstream).Replace(site)
	// No admin endpoint (tests run in parallel), no certificates, nothing
	// kept outside the test's directory.
	conf := "{\n\tadmin off\n\tauto_https off\n}\n" + site
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "caddy.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd := osexec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	runProxy(t, cmd, "127.0.0.1:"+port, logFile)
	return "http://127.0.0.1:" + port
}

// proxied is what the client of a proxy got.
type proxied struct {
	status int
	// upstream is what the service behind the proxy received, when the
	// request reached it.
	upstream http.Header
	header   http.Header
}

func proxyGet(t *testing.T, url, token string, forged map[string]string) proxied {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range forged {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	out := proxied{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		var echo struct {
			Headers http.Header `json:"headers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
			t.Fatalf("GET %s: the upstream's answer: %v", url, err)
		}
		out.upstream = echo.Headers
	}
	return out
}

// checkProxy holds a proxy configured as docs/GATEWAY.md says to the
// contract of forward-auth: a live token with the location's scope
// reaches the service with its identity, and nothing the client forges
// does; no token, a revoked one and one without the scope are refused;
// a logout through the API is refused at the next request.
//
// passesExpiry says whether the snippet passes X-Auth-Expires-At on; one
// that does not must still drop the client's own.
func checkProxy(t *testing.T, s *Server, base string, passesExpiry bool) {
	user, login := s.UserWithToken(t, "alice")
	orders := s.IssueToken(t, user, "orders:read")
	noExpiry := s.issueTokenWithoutExpiry(t, user, "orders:read")
	profile := s.IssueToken(t, user, "profile:read")
	revoked := s.IssueToken(t, user, "orders:read")
	s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: revoked}).Expect(t, http.StatusNoContent)
	url := base + "/orders/7"
	forged := map[string]string{"X-Auth-User-Id": "999", "X-Auth-Username": "mallory", "X-Auth-Scopes": "*",
		"X-Auth-Token-Id": "999", "X-Auth-Expires-At": "2099-01-01T00:00:00Z"}

	for _, tc := range []struct {
		name, token, scopes string
		expires             bool
	}{
		{"a narrow token", orders, "orders:read", true},
		{"a login token", login, "*", true},
		{"a token that does not expire", noExpiry, "orders:read", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := proxyGet(t, url, tc.token, forged)
			if got.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200", got.status)
			}
			want := map[string]string{"X-Auth-User-Id": fmt.Sprint(user.ID), "X-Auth-Username": "alice",
				"X-Auth-Scopes": tc.scopes, "X-Auth-Token-Id": fmt.Sprint(s.tokenID(t, tc.token))}
			for name, value := range want {
				if v := got.upstream.Values(name); len(v) != 1 || v[0] != value {
					t.Errorf("the upstream got %s %q, want %q", name, v, value)
				}
			}
			expires := got.upstream.Values("X-Auth-Expires-At")
			switch {
			case !passesExpiry && len(expires) != 0:
				t.Errorf("the upstream got X-Auth-Expires-At %q, want none: this proxy passes none on", expires)
			case !passesExpiry:
			case tc.expires && (len(expires) != 1 || expires[0] == forged["X-Auth-Expires-At"]):
				t.Errorf("the upstream got X-Auth-Expires-At %q, want the token's expiry", expires)
			case !tc.expires && len(expires) != 0:
				t.Errorf("the upstream got X-Auth-Expires-At %q for a token that does not expire, want none", expires)
			}
		})
	}

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a revoked token", revoked, http.StatusUnauthorized},
		{"a token without the location's scope", profile, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := proxyGet(t, url, tc.token, forged)
			if got.status != tc.want {
				t.Fatalf("status: got %d, want %d", got.status, tc.want)
			}
			if got.upstream != nil {
				t.Error("the request reached the upstream")
			}
			if tc.want == http.StatusUnauthorized && !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want the Bearer challenge", got.header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("logout through the API", func(t *testing.T) {
		session := s.Login(t, "alice", testPassword)
		if got := proxyGet(t, url, session, nil); got.status != http.StatusOK {
			t.Fatalf("before logout: got %d, want 200", got.status)
		}
		s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: session}).Expect(t, http.StatusNoContent)
		if got := proxyGet(t, url, session, nil); got.status != http.StatusUnauthorized {
			t.Fatalf("after logout: got %d, want 401", got.status)
		}
	})
}

func gatewayServer(t *testing.T) *Server {
	return NewServer(t, WithConfig(func(c *config.Config) {
		c.ExtraScopes = []string{"orders:read", "orders:write"}
		c.TrustedProxies = []string{"127.0.0.1"}
	}))
}

func TestNginxAuthRequest(t *testing.T) {
	t.Parallel()
	s := gatewayServer(t)
	checkProxy(t, s, startNginx(t, s, strings.TrimPrefix(echoUpstream(t).URL, "http://")), true)
}

func TestCaddyForwardAuth(t *testing.T) {
	t.Parallel()
	s := gatewayServer(t)
	checkProxy(t, s, startCaddy(t, s, strings.TrimPrefix(echoUpstream(t).URL, "http://")), false)
}

// issueTokenWithoutExpiry gives user a token with scopes that never
// expires.
func (s *Server) issueTokenWithoutExpiry(t *testing.T, user *models.User, scopes ...string) string {
	t.Helper()
	tok, err := models.IssueToken(t.Context(), s.DB, user.ID,
		models.TokenSpec{Name: "forever", Kind: models.KindPersonal, Scopes: scopes},
		models.TokenPolicy{MaxPerUser: s.Config.MaxTokensPerUser, IdleTimeout: s.Config.TokenIdleTimeout}, false)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}
