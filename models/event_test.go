package models

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// EventTypes lists every event type this package declares, so that an
// operator can ask a webhook for any of them.
func TestEventTypesListsEveryType(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	declared := regexp.MustCompile(`(?m)^\s*Event[A-Za-z]+\s*=\s*"([a-z_]+)"`)
	found := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range declared.FindAllSubmatch(src, -1) {
			found++
			if !slices.Contains(EventTypes(), string(m[1])) {
				t.Errorf("%s declares event type %q, which EventTypes leaves out", f, m[1])
			}
		}
	}
	if found != len(EventTypes()) {
		t.Errorf("%d event types declared, EventTypes has %d", found, len(EventTypes()))
	}
}
