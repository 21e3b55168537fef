package tests

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/models"
)

// limitBackends are the homes of the login limits that this run has:
// memory always, and Redis when TEST_REDIS_URL names one (.ci/run sets it,
// as it sets TEST_DATABASE_URL). Every throttling test runs on each.
func limitBackends() []struct {
	name string
	opts []Option
} {
	backends := []struct {
		name string
		opts []Option
	}{{"memory", nil}}
	if redisConfigured() {
		backends = append(backends, struct {
			name string
			opts []Option
		}{"redis", []Option{WithRedis()}})
	}
	return backends
}

func withLimits(userFailures int, window time.Duration, ipPerMinute int) Option {
	return WithConfig(func(c *config.Config) {
		c.LoginUserFailures, c.LoginUserWindow, c.LoginIPPerMinute = userFailures, window, ipPerMinute
	})
}

func login(username, password string) Request {
	return Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": username, "password": password}}
}

// expectRateLimited checks the 429 and returns its Retry-After, which must
// be whole seconds within (0, most].
func expectRateLimited(t *testing.T, r *Response, most time.Duration) int {
	t.Helper()
	r.ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > most+time.Second {
		t.Fatalf("Retry-After: got %q, want whole seconds in [1, %v]", r.Header.Get("Retry-After"), most)
	}
	return secs
}

func TestLoginLocksUsernameAfterFailures(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, append(b.opts, withLimits(3, 15*time.Minute, 1000))...)
			alice := s.CreateUser(t, "alice", testPassword)
			s.CreateUser(t, "bob", testPassword)
			for range 3 {
				s.Do(t, login("alice", "wrong password")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
			}
			// Locked, even for the right password and in another spelling.
			expectRateLimited(t, s.Do(t, login("alice", testPassword)), 15*time.Minute)
			expectRateLimited(t, s.Do(t, login("ALICE", testPassword)), 15*time.Minute)
			var issued int64
			s.DB.Model(&models.APIToken{}).Where("user_id = ?", alice.ID).Count(&issued)
			if issued != 0 {
				t.Errorf("a locked username was issued %d token(s)", issued)
			}
			// Each refusal is in alice's security events, with the client.
			var limited []models.SecurityEvent
			s.DB.Where("user_id = ? AND type = ?", alice.ID, models.EventLoginRateLimited).Find(&limited)
			if len(limited) != 2 || limited[0].IP != "127.0.0.1" {
				t.Errorf("login_rate_limited events: %+v, want 2 from 127.0.0.1", limited)
			}
			// Other usernames are not affected, from the same client.
			s.Login(t, "bob", testPassword)
			s.Do(t, login("nobody", "x")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		})
	}
}

func TestLoginSuccessResetsFailures(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, append(b.opts, withLimits(3, 15*time.Minute, 1000))...)
			s.CreateUser(t, "alice", testPassword)
			for range 2 {
				s.Do(t, login("alice", "wrong password")).Expect(t, http.StatusUnauthorized)
			}
			s.Login(t, "alice", testPassword)
			// Without the reset this would be the fourth failure in the window.
			for range 2 {
				s.Do(t, login("alice", "wrong password")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
			}
			s.Login(t, "alice", testPassword)
		})
	}
}

func TestLoginLockEndsWithItsWindow(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			const window = time.Second
			s := NewServer(t, append(b.opts, withLimits(2, window, 1000))...)
			s.CreateUser(t, "alice", testPassword)
			s.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			s.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			secs := expectRateLimited(t, s.Do(t, login("alice", testPassword)), window)
			// Waiting as long as Retry-After says is enough.
			time.Sleep(time.Duration(secs) * time.Second)
			s.Login(t, "alice", testPassword)
		})
	}
}

func TestLoginIPBudget(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, append(b.opts, withLimits(1000, 15*time.Minute, 3),
				WithConfig(func(c *config.Config) { c.AllowRegistration = true }))...)
			s.CreateUser(t, "alice", testPassword)
			// Every login request counts, whatever its outcome.
			s.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: "not json"}).Expect(t, http.StatusBadRequest)
			s.Login(t, "alice", testPassword)
			expectRateLimited(t, s.Do(t, login("alice", testPassword)), 20*time.Second)
			expectRateLimited(t, s.Do(t, login("bob", "x")), 20*time.Second)
			// Registration has a budget of its own.
			s.Do(t, Request{Method: "POST", Path: "/api/register/",
				Body: map[string]string{"username": "carol", "email": "carol@example.com", "password": "a sturdy passphrase 43"}}).
				Expect(t, http.StatusCreated)
		})
	}
}

func TestLoginIPIgnoresForwardedForFromUntrustedPeers(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			// No TRUSTED_PROXIES: the peer (loopback) is the client, whatever
			// it claims in X-Forwarded-For or X-Real-IP.
			s := NewServer(t, append(b.opts, withLimits(1000, 15*time.Minute, 3))...)
			s.CreateUser(t, "alice", testPassword)
			for i := range 3 {
				req := login("alice", testPassword)
				req.Header = map[string]string{"X-Forwarded-For": "203.0.113." + strconv.Itoa(i+1), "X-Real-IP": "198.51.100." + strconv.Itoa(i+1)}
				s.Do(t, req).Expect(t, http.StatusOK)
			}
			req := login("alice", testPassword)
			req.Header = map[string]string{"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "198.51.100.99"}
			expectRateLimited(t, s.Do(t, req), 20*time.Second)
		})
	}
}

func TestLoginIPBelievesTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, append(b.opts, withLimits(1000, 15*time.Minute, 2),
				WithConfig(func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} }))...)
			s.CreateUser(t, "alice", testPassword)
			from := func(header, value string) Request {
				req := login("alice", testPassword)
				req.Header = map[string]string{header: value}
				return req
			}
			cases := []struct {
				name, header, value string
				want                int
			}{
				{"first client", "X-Forwarded-For", "203.0.113.1", 200},
				{"first client again", "X-Forwarded-For", "203.0.113.1", 200},
				{"first client over its budget", "X-Forwarded-For", "203.0.113.1", 429},
				// The proxy appends the peer it saw: the rightmost untrusted
				// address is the client, whatever the client wrote before it.
				{"first client forging a hop", "X-Forwarded-For", "10.9.9.9, 203.0.113.1", 429},
				{"another client", "X-Forwarded-For", "203.0.113.2", 200},
				// X-Real-IP is not believed: this is the proxy itself.
				{"proxy, X-Real-IP only", "X-Real-IP", "198.51.100.7", 200},
				{"proxy again", "X-Real-IP", "198.51.100.8", 200},
				{"proxy over its budget", "X-Real-IP", "198.51.100.9", 429},
				// One IPv6 /64 is one client.
				{"IPv6 client", "X-Forwarded-For", "2001:db8:1:2::1", 200},
				{"same /64", "X-Forwarded-For", "2001:db8:1:2::ffff", 200},
				{"same /64 over its budget", "X-Forwarded-For", "2001:db8:1:2:aaaa::3", 429},
				{"next /64", "X-Forwarded-For", "2001:db8:1:3::1", 200},
			}
			for _, tc := range cases {
				resp := s.Do(t, from(tc.header, tc.value))
				if resp.Status != tc.want {
					t.Fatalf("%s: status %d, want %d; body %s", tc.name, resp.Status, tc.want, resp.Body)
				}
			}
		})
	}
}

func TestLoginLimitsAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := NewServer(t, append(b.opts, withLimits(3, 15*time.Minute, 5))...)
			second := []Option{withLimits(3, 15*time.Minute, 5)}
			shared := b.name == "redis"
			if shared {
				// Instances that share Redis share a database too (or set
				// the same SECRET_KEY): the lockout's keys are made with it.
				second = append(second, WithLimitsOf(a), WithDatabaseOf(a))
			}
			other := NewServer(t, second...)
			a.CreateUser(t, "alice", testPassword)
			if !shared {
				other.CreateUser(t, "alice", testPassword)
			}
			a.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			other.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			a.Do(t, login("alice", "wrong")).Expect(t, http.StatusUnauthorized)
			if !shared {
				// In memory each instance counts alone: two failures here.
				other.Login(t, "alice", testPassword)
				return
			}
			// Three failures across two instances lock the username on both.
			expectRateLimited(t, other.Do(t, login("alice", testPassword)), 15*time.Minute)
			expectRateLimited(t, a.Do(t, login("alice", testPassword)), 15*time.Minute)
			// And the five requests this client made spent its budget on both.
			expectRateLimited(t, other.Do(t, login("bob", "x")), 12*time.Second)
		})
	}
}

func TestLoginFailsClosedWithoutRedis(t *testing.T) {
	t.Parallel()
	// A Redis that is not there: logins stop with 503 rather than go
	// unthrottled.
	s := NewServer(t, WithUnreachableRedis())
	s.CreateUser(t, "alice", testPassword)
	body := s.Do(t, login("alice", testPassword)).ExpectError(t, http.StatusServiceUnavailable, "unavailable")
	if body["error"] != unavailableMessage {
		t.Errorf("body: %v", body)
	}
}

func TestRevokeLeakedHasAnIPBudget(t *testing.T) {
	t.Parallel()
	for _, b := range limitBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := NewServer(t, append(b.opts, withLimits(1000, 15*time.Minute, 2))...)
			report := Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: map[string]any{"tokens": []string{"tka_x"}}}
			s.Do(t, report).Expect(t, http.StatusAccepted)
			s.Do(t, report).Expect(t, http.StatusAccepted)
			expectRateLimited(t, s.Do(t, report), 30*time.Second)
			// Its budget is not the login's.
			s.CreateUser(t, "alice", testPassword)
			s.Login(t, "alice", testPassword)
		})
	}
}
