package keyring

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"tokenauth/config"
	"tokenauth/internal/testdb"
)

func TestSealOpensOnlyUnderItsKeyAndPurpose(t *testing.T) {
	t.Parallel()
	k, err := New([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New([]byte(strings.Repeat("o", 32)))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal("totp", []byte("JBSWY3DPEHPK3PXP"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "JBSWY3DPEHPK3PXP") {
		t.Fatalf("the sealed value shows the plaintext: %q", sealed)
	}
	if again, _ := k.Seal("totp", []byte("JBSWY3DPEHPK3PXP")); again == sealed {
		t.Error("two seals of one plaintext are equal: the nonce is not fresh")
	}
	if got, err := k.Open("totp", sealed); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Open: got %q, %v", got, err)
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-2] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another purpose": func() ([]byte, error) { return k.Open("webhook", sealed) },
		"another key":     func() ([]byte, error) { return other.Open("totp", sealed) },
		"tampered":        func() ([]byte, error) { return k.Open("totp", string(tampered)) },
		"not sealed":      func() ([]byte, error) { return k.Open("totp", "JBSWY3DPEHPK3PXP") },
		"truncated":       func() ([]byte, error) { return k.Open("totp", sealed[:8]) },
	} {
		if got, err := open(); !errors.Is(err, ErrUnsealable) || got != nil {
			t.Errorf("%s: got %q, %v; want ErrUnsealable", name, got, err)
		}
	}
	if bytes.Equal(k.HMAC("lockout", []byte("alice")), k.HMAC("events", []byte("alice"))) {
		t.Error("two purposes share an HMAC key")
	}
	if bytes.Equal(k.HMAC("lockout", []byte("alice")), other.HMAC("lockout", []byte("alice"))) {
		t.Error("two keys give one HMAC")
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("a key of 5 bytes was accepted")
	}
}

// Without SECRET_KEY the key is the one migrate generated, the same at
// every start; with it, the check value decides: a key that did not seal
// the database's secrets stops start-up, naming SECRET_KEY.
func TestLoadKeepsOneKeyPerDatabase(t *testing.T) {
	t.Parallel()
	database, err := config.OpenDatabase(testdb.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { database.Close() })
	db := database.ORM
	if _, err := Load(t.Context(), db, ""); err == nil {
		t.Fatal("a keyring loaded before migrate stored a key")
	}
	if err := config.Migrate(db); err != nil {
		t.Fatal(err)
	}
	first, err := Load(t.Context(), db, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Migrate(db); err != nil { // a second migrate keeps the key
		t.Fatal(err)
	}
	second, err := Load(t.Context(), db, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.HMAC("x", nil), second.HMAC("x", nil)) {
		t.Fatal("two starts on one database use two keys")
	}
	_, err = Load(t.Context(), db, strings.Repeat("a different key ", 3))
	if err == nil || !strings.HasPrefix(err.Error(), "SECRET_KEY:") {
		t.Fatalf("a SECRET_KEY that did not seal the database's secrets: got %v, want an error naming SECRET_KEY", err)
	}
	if _, err := Load(t.Context(), db, "short"); err == nil || !strings.Contains(err.Error(), "SECRET_KEY") {
		t.Fatalf("a short SECRET_KEY: got %v", err)
	}
}
