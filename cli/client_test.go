package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"

	"tokenauth/models"
)

func TestClientCreateListRevoke(t *testing.T) {
	c := newCLI(t)
	out, _, err := c.run("", "client", "create", "orders-service")
	if err != nil {
		t.Fatalf("client create: %v", err)
	}
	id := regexp.MustCompile(`client_id:\s+(tkc_\w+)`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`client_secret:\s+(tkcs_\w+)`).FindStringSubmatch(out)
	if id == nil || secret == nil {
		t.Fatalf("client create printed no id and secret: %q", out)
	}
	db := openDB(t, c.url).ORM
	var stored models.ResourceServer
	if err := db.Where("client_id = ?", id[1]).Take(&stored).Error; err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret[1]))
	if stored.SecretHash != hex.EncodeToString(sum[:]) {
		t.Errorf("stored secret hash: got %q, want the secret's SHA-256", stored.SecretHash)
	}
	if _, err := models.AuthenticateClient(t.Context(), db, id[1], secret[1]); err != nil {
		t.Errorf("the printed secret does not authenticate: %v", err)
	}

	out, _, err = c.run("", "client", "list")
	if err != nil {
		t.Fatalf("client list: %v", err)
	}
	if !strings.Contains(out, id[1]) || !strings.Contains(out, `"orders-service"`) || strings.Contains(out, secret[1]) {
		t.Errorf("client list: got %q, want the id and name and never the secret", out)
	}

	if out, _, err = c.run("", "client", "revoke", id[1]); err != nil || !strings.Contains(out, "revoked client "+id[1]) {
		t.Fatalf("client revoke: %q, %v", out, err)
	}
	if _, err := models.AuthenticateClient(t.Context(), db, id[1], secret[1]); err == nil {
		t.Error("a revoked client still authenticates")
	}
	if _, _, err = c.run("", "client", "revoke", id[1]); err == nil || !strings.Contains(err.Error(), "no live client") {
		t.Errorf("revoking twice: got %v, want no live client", err)
	}
}

func TestClientCommandUsage(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"client"}, {"client", "create"}, {"client", "list", "x"}, {"client", "drop", "x"},
		{"client", "create", ""}, {"client", "create", "a\x00b"}} {
		_, _, err := c.run("", args...)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}
