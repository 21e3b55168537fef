package tests

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"tokenauth/config"
)

// scrape reads /metrics from the metrics listener and returns every sample
// by its name and labels, as written in the text format
// (`name{label="value",...}`).
func (s *Server) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on the metrics listener: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type: got %q, want the Prometheus text format", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unreadable sample %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

func expectSample(t *testing.T, samples map[string]float64, name string, want float64) {
	t.Helper()
	got, ok := samples[name]
	if !ok {
		t.Errorf("no sample %s", name)
		return
	}
	if got != want {
		t.Errorf("%s: got %v, want %v", name, got, want)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *config.Config) { c.LoginIPPerMinute = 3 }))
	_, tok := s.UserWithToken(t, "alice")
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
		ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: "not json"}).ExpectError(t, http.StatusBadRequest, "invalid_json")
	// The fourth login from this address within the minute.
	s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
		ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	for range 3 {
		s.Do(t, Request{Path: "/api/profile/", Token: tok}).Expect(t, http.StatusOK)
	}
	s.Do(t, Request{Path: "/api/profile", Token: "tka_nonsense"}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Method: "DELETE", Path: "/api/tokens/123/"}).ExpectError(t, http.StatusUnauthorized, "authentication_required")
	s.Do(t, Request{Path: "/nowhere", OffSpec: true}).ExpectError(t, http.StatusNotFound, "not_found")

	m := s.scrape(t)
	expectSample(t, m, `tokenauth_logins_total{outcome="succeeded"}`, 1)
	expectSample(t, m, `tokenauth_logins_total{outcome="invalid_credentials"}`, 1)
	expectSample(t, m, `tokenauth_logins_total{outcome="invalid_request"}`, 1)
	expectSample(t, m, `tokenauth_logins_total{outcome="rate_limited"}`, 1)
	expectSample(t, m, `tokenauth_http_requests_total{method="GET",route="/api/profile/",status="200"}`, 3)
	expectSample(t, m, `tokenauth_http_requests_total{method="GET",route="/api/profile",status="401"}`, 1)
	// Routes are patterns, so ids do not multiply the series.
	expectSample(t, m, `tokenauth_http_requests_total{method="DELETE",route="/api/tokens/:id/",status="401"}`, 1)
	expectSample(t, m, `tokenauth_http_requests_total{method="GET",route="unmatched",status="404"}`, 1)
	expectSample(t, m, `tokenauth_http_request_duration_seconds_count{method="POST",route="/api/login/",status="200"}`, 1)
	expectSample(t, m, `tokenauth_rate_limit_hits_total{limit="ip"}`, 1)
	// The first profile request looks the token up, the next two hit.
	expectSample(t, m, `tokenauth_token_cache_misses_total`, 1)
	expectSample(t, m, `tokenauth_token_cache_hits_total`, 2)
	expectSample(t, m, `tokenauth_token_cache_entries`, 1)
	expectSample(t, m, `tokenauth_token_cache_enabled`, 1)
	expectSample(t, m, `tokenauth_token_usage_pending`, 1)
	if _, ok := m[`go_goroutines`]; !ok {
		t.Error("no Go runtime metrics")
	}

	// Each app has its own registry: another server counts from zero.
	other := NewServer(t)
	expectSample(t, other.scrape(t), `tokenauth_token_cache_hits_total`, 0)
	if _, ok := other.scrape(t)[`tokenauth_logins_total{outcome="succeeded"}`]; ok {
		t.Error("a fresh server reports another server's logins")
	}
}

func TestMetricsCountInvalidationsReceived(t *testing.T) {
	t.Parallel()
	a := NewServer(t)
	b := NewServer(t, WithDatabaseOf(a))
	_, tok := a.UserWithToken(t, "alice")
	b.expectCached(t, tok)
	before := b.scrape(t)[`tokenauth_token_cache_invalidations_received_total`]
	a.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: tok}).Expect(t, http.StatusNoContent)
	waitFor(t, "the invalidation to reach the other instance", func() bool {
		return b.Resolver.Stats().Invalidations > uint64(before)
	})
	if got := b.scrape(t)[`tokenauth_token_cache_invalidations_received_total`]; got <= before {
		t.Errorf("invalidations received: got %v, want more than %v", got, before)
	}
}

// A client may send any method token; each must not become a series of its
// own, or invented methods would grow the metrics without end.
func TestMetricsLabelInventedMethodsOther(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for _, method := range []string{"BREW", "PURGE", "X-ANYTHING"} {
		s.Do(t, Request{Method: method, Path: "/api/profile/", OffSpec: true}).
			ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	}
	s.Do(t, Request{Method: "OPTIONS", Path: "/api/profile/", OffSpec: true}).
		ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	m := s.scrape(t)
	expectSample(t, m, `tokenauth_http_requests_total{method="other",route="unmatched",status="405"}`, 3)
	expectSample(t, m, `tokenauth_http_requests_total{method="OPTIONS",route="unmatched",status="405"}`, 1)
	for sample := range m {
		for _, method := range []string{"BREW", "PURGE", "X-ANYTHING"} {
			if strings.Contains(sample, `method="`+method+`"`) {
				t.Errorf("a series for the invented method %s: %s", method, sample)
			}
		}
	}
}

// The metrics have a listener of their own: the public router does not
// serve them, and the metrics listener serves nothing else.
func TestMetricsAreNotOnThePublicListener(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, tok := s.UserWithToken(t, "alice")
	for _, path := range []string{"/metrics", "/metrics/"} {
		s.Do(t, Request{Path: path, OffSpec: true}).ExpectError(t, http.StatusNotFound, "not_found")
		s.Do(t, Request{Path: path, Token: tok, OffSpec: true}).ExpectError(t, http.StatusNotFound, "not_found")
	}
	for _, path := range []string{"/", "/healthz", "/api/profile/", "/metrics/x"} {
		resp, err := http.Get(s.MetricsURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener: %d, want 404", path, resp.StatusCode)
		}
	}
	if _, ok := s.scrape(t)[`tokenauth_token_cache_enabled`]; !ok {
		t.Error("the metrics listener serves no tokenauth metrics")
	}
}
