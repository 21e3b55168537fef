package webhooks

import (
	"testing"
	"time"

	"tokenauth/webhooks/verifier"
)

// A delivery is retried for at least 24 hours before it is given up, and
// for not much longer.
func TestPolicyRetriesForADay(t *testing.T) {
	var span time.Duration
	for attempt := 1; attempt < Policy.MaxAttempts; attempt++ {
		span += Policy.Backoff(attempt)
	}
	if span < 24*time.Hour || span > 26*time.Hour {
		t.Errorf("the last attempt comes %v after the first, want 24h to 26h", span)
	}
}

// What Sign makes, the documented verifier accepts, and nothing else.
func TestSignIsWhatTheVerifierChecks(t *testing.T) {
	at := time.Unix(1767225600, 0)
	body := []byte(`{"id":7,"type":"token_created"}`)
	header := Sign("whsec_abc", at, body)
	if err := verifier.Verify(header, body, "whsec_abc", at, 5*time.Minute); err != nil {
		t.Errorf("Verify(%q): %v", header, err)
	}
	if err := verifier.Verify(header, append(body, ' '), "whsec_abc", at, 5*time.Minute); err == nil {
		t.Error("a changed body verified")
	}
}

func TestCheckURL(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://hooks.example.com/in": true, "http://10.0.0.2:8080/x": true, "ftp://example.com": false,
		"https://user:pw@example.com/": false, "/relative": false, "https://": false, "https://exa mple.com": false,
		"https://example.com/\xff": false,
	} {
		if err := checkURL(url); (err == nil) != ok {
			t.Errorf("checkURL(%q): %v, want ok=%v", url, err, ok)
		}
	}
}
