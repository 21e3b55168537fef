package cli

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/models"
	"tokenauth/webhooks/verifier"
)

var printedSecret = regexp.MustCompile(`signing secret \(shown once, keep it with the receiver\): (whsec_\S+)\n`)

func TestWebhookAddListTestRemove(t *testing.T) {
	c := newCLI(t)
	var mu sync.Mutex
	var got []string
	secret := ""
	status := http.StatusNoContent
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := verifier.Verify(r.Header.Get("Tokenauth-Signature"), body, secret, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = append(got, string(body))
		w.WriteHeader(status)
	}))
	defer receiver.Close()

	out, _, err := c.run("", "webhook", "add", receiver.URL, "--events", "token_created,token_revoked")
	if err != nil {
		t.Fatalf("webhook add: %v", err)
	}
	m := printedSecret.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "added endpoint 1: "+receiver.URL) {
		t.Fatalf("webhook add printed %q", out)
	}
	mu.Lock()
	secret = m[1]
	mu.Unlock()

	db := openDB(t, c.url).ORM
	var stored models.WebhookEndpoint
	if err := db.First(&stored).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored.Secret, secret) || strings.Contains(stored.Secret, secret[len("whsec_"):]) ||
		stored.Events != "token_created,token_revoked" {
		t.Errorf("stored: %+v", stored)
	}

	out, _, err = c.run("", "webhook", "list")
	if err != nil || !strings.Contains(out, receiver.URL) || !strings.Contains(out, "token_created,token_revoked") ||
		strings.Contains(out, secret) {
		t.Errorf("webhook list: %q, %v", out, err)
	}

	out, _, err = c.run("", "webhook", "test", "1")
	mu.Lock()
	delivered := len(got) == 1 && strings.Contains(got[0], `"type":"webhook_test"`)
	status = http.StatusInternalServerError
	mu.Unlock()
	if err != nil || !strings.Contains(out, "delivered a webhook_test event") || !delivered {
		t.Errorf("webhook test: %q, %v, received %v", out, err, got)
	}
	if _, _, err = c.run("", "webhook", "test", "1"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("webhook test to a failing receiver: %v", err)
	}

	out, _, err = c.run("", "webhook", "remove", "1")
	if err != nil || !strings.Contains(out, "removed endpoint 1") {
		t.Errorf("webhook remove: %q, %v", out, err)
	}
	if out, _, err = c.run("", "webhook", "list"); err != nil || !strings.Contains(out, "no webhook endpoints") {
		t.Errorf("webhook list after remove: %q, %v", out, err)
	}
	if _, _, err = c.run("", "webhook", "remove", "1"); err == nil || !strings.Contains(err.Error(), "no webhook endpoint 1") {
		t.Errorf("removing it again: %v", err)
	}
}

func TestWebhookCommandRefusesBadInput(t *testing.T) {
	c := newCLI(t)
	tests := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"webhook"}, true, "needs a subcommand"},
		{[]string{"webhook", "frobnicate"}, true, "unknown webhook subcommand"},
		{[]string{"webhook", "add"}, true, "takes the endpoint's URL"},
		{[]string{"webhook", "add", "ftp://example.com/"}, true, "https://"},
		{[]string{"webhook", "add", "https://u:p@example.com/"}, true, "user name or password"},
		{[]string{"webhook", "add", "https://example.com/", "--events", "token_created,nope"}, true, `unknown event type "nope"`},
		{[]string{"webhook", "add", "https://example.com/", "extra"}, true, "takes one URL"},
		{[]string{"webhook", "list", "x"}, true, "takes no argument"},
		{[]string{"webhook", "test"}, true, "takes the endpoint's ID"},
		{[]string{"webhook", "test", "abc"}, true, "not an endpoint ID"},
		{[]string{"webhook", "test", "7"}, false, "no webhook endpoint 7"},
		{[]string{"webhook", "deliveries", "7"}, false, "no webhook endpoint 7"},
	}
	for _, tc := range tests {
		_, _, err := c.run("", tc.args...)
		var usage usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &usage) != tc.usage {
			t.Errorf("%v: got %v, want an error with %q (usage error %v)", tc.args, err, tc.want, tc.usage)
		}
	}
}
