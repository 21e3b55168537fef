package secretscanning

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A bad setting stops start-up with an error that names it.
func TestLoadNamesTheSetting(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, source := range map[string]string{
		"missing file":       filepath.Join(dir, "nope.json"),
		"not JSON":           write("bad.json", "nope"),
		"no keys":            write("empty.json", `{"public_keys": []}`),
		"not PEM":            write("notpem.json", `{"public_keys": [{"key_identifier": "a", "key": "xyz"}]}`),
		"plain http, remote": "http://api.github.com/meta/public_keys/secret_scanning",
		"URL without host":   "https://",
	} {
		if _, err := Load(source, time.Now); err == nil || !strings.Contains(err.Error(), Setting) {
			t.Errorf("%s: %v, want an error naming %s", name, err, Setting)
		}
	}
	for _, ok := range []string{"https://api.github.com/meta/public_keys/secret_scanning", "http://127.0.0.1:9/keys"} {
		if _, err := Load(ok, time.Now); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// Keys that cannot be fetched make the report unanswerable for now
// (ErrKeysUnavailable: 503), not a bad signature.
func TestUnreachableKeys(t *testing.T) {
	k, err := Load("http://127.0.0.1:1/keys", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	err = k.Verify(context.Background(), "id", "c2ln", []byte("[]"))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Errorf("got %v, want ErrKeysUnavailable", err)
	}
}
