package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"tokenauth/config"
	"tokenauth/models"
)

// scanKey is a key pair standing in for GitHub's, and the keys document
// that publishes it, in GitHub's format.
type scanKey struct {
	id   string
	priv *ecdsa.PrivateKey
	doc  []byte
}

func newScanKey(t *testing.T) *scanKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	k := &scanKey{id: hex.EncodeToString(sum[:]), priv: priv}
	k.doc, err = json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": k.id,
		"key":            string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		"is_current":     true,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign returns the headers GitHub sends with body.
func (k *scanKey) sign(t *testing.T, body string) map[string]string {
	t.Helper()
	digest := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Github-Public-Key-Identifier": k.id,
		"Github-Public-Key-Signature": base64.StdEncoding.EncodeToString(sig)}
}

// scanReportBody is GitHub's report of the tokens, found in a public file.
func scanReportBody(t *testing.T, tokens ...string) string {
	t.Helper()
	var reports []map[string]string
	for _, tok := range tokens {
		reports = append(reports, map[string]string{"token": tok, "type": "tokenauth_token",
			"url": "https://github.com/octo/app/blob/0a1b2c/config/prod.yml", "source": "content"})
	}
	b, err := json.Marshal(reports)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// withScanKeysFile serves the receiver with the key in a file.
func withScanKeysFile(t *testing.T, k *scanKey) Option {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, k.doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return WithConfig(func(c *config.Config) { c.GitHubSecretScanningKeys = path })
}

// GitHub's report of a live token revokes it at once, says where it was
// found, and answers GitHub's feedback; a tampered report or an unknown
// key revokes nothing.
func TestGitHubSecretScanningRevokesReportedTokens(t *testing.T) {
	t.Parallel()
	k := newScanKey(t)
	s := NewServer(t, withScanKeysFile(t, k))
	u, login := s.UserWithToken(t, "ada")
	leaked := s.IssueToken(t, u)
	other := s.IssueToken(t, u)
	made := "tka_" + strings.Repeat("A", 43) + "000000"
	const path = "/api/github/secret-scanning"

	// Tampered (one byte), unknown key, no signature: 401, nothing revoked.
	body := scanReportBody(t, leaked, other)
	headers := k.sign(t, body)
	tampered := strings.Replace(body, "content", "contenT", 1)
	s.Do(t, Request{Method: "POST", Path: path, Body: tampered, Header: headers}).
		ExpectError(t, http.StatusUnauthorized, "invalid_signature")
	stranger := newScanKey(t)
	s.Do(t, Request{Method: "POST", Path: path, Body: body, Header: stranger.sign(t, body)}).
		ExpectError(t, http.StatusUnauthorized, "invalid_signature")
	s.Do(t, Request{Method: "POST", Path: path, Body: body}).ExpectError(t, http.StatusUnauthorized, "invalid_signature")
	s.Do(t, Request{Method: "POST", Path: path, Body: body,
		Header: map[string]string{"Github-Public-Key-Identifier": k.id, "Github-Public-Key-Signature": "%%%"}}).
		ExpectError(t, http.StatusUnauthorized, "invalid_signature")
	for _, tok := range []string{leaked, other} {
		s.Do(t, Request{Path: "/api/tokens/current/", Token: tok}).Expect(t, http.StatusOK)
	}

	// The genuine report of one live token and a made-up one.
	body = scanReportBody(t, leaked, made)
	var feedback []map[string]string
	s.Do(t, Request{Method: "POST", Path: path, Body: body, Header: k.sign(t, body)}).
		Expect(t, http.StatusOK).Decode(t, &feedback)
	want := []map[string]string{
		{"token_hash": tokenHash(leaked), "token_type": "tokenauth_token", "label": "true_positive"},
		{"token_hash": tokenHash(made), "token_type": "tokenauth_token", "label": "false_positive"},
	}
	if got, _ := json.Marshal(feedback); string(got) != mustJSON(t, want) {
		t.Errorf("feedback: %s, want %s", got, mustJSON(t, want))
	}
	s.Do(t, Request{Path: "/api/tokens/current/", Token: leaked}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/tokens/current/", Token: other}).Expect(t, http.StatusOK)

	// Reported again: still a true positive, nothing more recorded.
	s.Do(t, Request{Method: "POST", Path: path, Body: body, Header: k.sign(t, body)}).
		Expect(t, http.StatusOK).Decode(t, &feedback)
	if feedback[0]["label"] != "true_positive" {
		t.Errorf("a revoked token reported again: %v", feedback[0])
	}
	var events struct {
		Events []map[string]any `json:"events"`
	}
	s.Do(t, Request{Path: "/api/security-events/", Token: login}).Expect(t, http.StatusOK).Decode(t, &events)
	revocations := 0
	for _, e := range events.Events {
		if e["type"] == models.EventTokenRevoked {
			revocations++
			detail, _ := e["detail"].(string)
			if e["reason"] != "leak_report" || !strings.Contains(detail, "content") ||
				!strings.Contains(detail, "https://github.com/octo/app/blob/0a1b2c/config/prod.yml") {
				t.Errorf("revocation event: %v", e)
			}
		}
	}
	if revocations != 1 {
		t.Errorf("%d revocation events, want 1", revocations)
	}
	if got := metric(t, s, `tokenauth_leak_reports_total{label="true_positive"}`); got != "2" {
		t.Errorf("true positives counted: %s, want 2", got)
	}

	// Not GitHub's format, though signed.
	for _, bad := range []string{`{"token":"x"}`, `[{"token": 5}]`, `[] []`, ``} {
		s.Do(t, Request{Method: "POST", Path: path, Body: bad, Header: k.sign(t, bad)}).
			ExpectError(t, http.StatusBadRequest, "invalid_json")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The keys can come from a URL, fetched once and kept; without the setting
// the receiver is off.
func TestGitHubSecretScanningKeysFromAURL(t *testing.T) {
	t.Parallel()
	k := newScanKey(t)
	var fetches atomic.Int32
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(k.doc)
	}))
	t.Cleanup(keys.Close)
	s := NewServer(t, WithConfig(func(c *config.Config) { c.GitHubSecretScanningKeys = keys.URL + "/meta/public_keys/secret_scanning" }))
	u, _ := s.UserWithToken(t, "ada")
	first, second := s.IssueToken(t, u), s.IssueToken(t, u)
	for _, tok := range []string{first, second} {
		body := scanReportBody(t, tok)
		s.Do(t, Request{Method: "POST", Path: "/api/github/secret-scanning", Body: body, Header: k.sign(t, body)}).
			Expect(t, http.StatusOK)
		s.Do(t, Request{Path: "/api/tokens/current/", Token: tok}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the keys were fetched %d times, want once", n)
	}

	off := NewServer(t)
	body := scanReportBody(t, first)
	off.Do(t, Request{Method: "POST", Path: "/api/github/secret-scanning", Body: body, Header: k.sign(t, body)}).
		ExpectError(t, http.StatusNotFound, "not_found")
}

// The pattern SECURITY.md publishes for secret scanners matches every
// token issued, and only strings of that shape.
func TestPublishedTokenPatternMatchesIssuedTokens(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Token format for secret scanners.*?```regex\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("SECURITY.md publishes no token pattern")
	}
	pattern := regexp.MustCompile(string(m[1]))
	for range 200 {
		secret, err := models.NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		if found := pattern.FindString("api_key: " + secret + "\n"); found != secret {
			t.Fatalf("the pattern finds %q in a file holding %q", found, secret)
		}
		if pattern.MatchString(secret[:len(secret)-1]) || pattern.MatchString(secret+"x") || pattern.MatchString("tkb_"+secret[4:]) {
			t.Fatalf("the pattern matches a string that is not a token, near %q", secret)
		}
	}
}
