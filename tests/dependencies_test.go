package tests

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// fixedVersions are advisories against modules built into the service,
// with the first version that fixes each. govulncheck (SECURITY.md) is the
// full check, but it needs the Go vulnerability database, which not every
// machine that runs the tests can reach; this test keeps a module that was
// moved off a known-vulnerable version from sliding back.
var fixedVersions = []struct {
	module, advisory, fixed string
}{
	// Pulled in through gin (its HTTP/3 support), so linked into the binary.
	{"github.com/quic-go/quic-go", "GO-2026-5676", "v0.59.1"},
}

// TestNoDependencyHasAKnownVulnerableVersion reads go.mod, which names
// the version the build selects of every module that provides a package
// (Go 1.17 and later); a test binary's own build information lists no
// dependencies to read instead.
func TestNoDependencyHasAKnownVulnerableVersion(t *testing.T) {
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]string{}
	for _, line := range strings.Split(string(goMod), "\n") {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(fields) >= 2 && strings.HasPrefix(fields[1], "v") {
			required[fields[0]] = fields[1]
		}
	}
	if strings.Contains(string(goMod), "\nreplace") {
		t.Fatal("go.mod replaces a module: check the replacement's version here too")
	}
	for _, fv := range fixedVersions {
		got, ok := required[fv.module]
		if !ok {
			t.Errorf("go.mod no longer requires %s: drop its entry (%s)", fv.module, fv.advisory)
			continue
		}
		if compareVersions(got, fv.fixed) < 0 {
			t.Errorf("%s %s has %s: use %s or later", fv.module, got, fv.advisory, fv.fixed)
		}
	}
}

// compareVersions compares two release versions vMAJOR.MINOR.PATCH as
// numbers (-1, 0 or 1); anything after the patch number is ignored.
func compareVersions(a, b string) int {
	pa, pb := versionNumbers(a), versionNumbers(b)
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func versionNumbers(v string) [3]int {
	var n [3]int
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	for i, p := range parts {
		if end := strings.IndexAny(p, "-+"); end >= 0 {
			p = p[:end]
		}
		n[i], _ = strconv.Atoi(p) // a malformed part counts as 0, the oldest
	}
	return n
}
