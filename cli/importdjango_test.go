package cli

import (
	"strings"
	"testing"

	"tokenauth/models"
)

const djangoFixture = "../tests/testdata/django/fixture.sqlite3"

func TestImportDjangoCommand(t *testing.T) {
	c := newCLI(t)
	args := []string{"import-django", "--from", djangoFixture, "--token-table", "accounts_apitoken"}

	out, _, err := c.run("", append(args, "--dry-run")...)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for _, want := range []string{"dry run: nothing was written", "users: 6 imported, 0 already imported",
		"password hashes: argon2 1, bcrypt_sha256 1, pbkdf2_sha256 3, unusable 1",
		"tokens: 6 imported, 0 already imported, 1 expired (left out)", "cannot log in with one (their tokens work): erin",
		"warning: 2 user(s) have a pbkdf2_sha256 hash of fewer than 100000 iterations", "until their first login here replaces it: dave, Zoë"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	db := openDB(t, c.url).ORM
	var users int64
	db.Model(&models.User{}).Count(&users)
	if users != 0 {
		t.Fatalf("the dry run created %d users", users)
	}

	if out, _, err = c.run("", args...); err != nil || strings.Contains(out, "dry run") || !strings.Contains(out, "users: 6 imported") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, _, err = c.run("", "import-django", "--from", djangoFixture, "--token-kind", "authtoken")
	if err != nil || !strings.Contains(out, "users: 0 imported, 6 already imported") || !strings.Contains(out, "tokens: 3 imported") {
		t.Fatalf("authtoken import: %v\n%s", err, out)
	}
	db.Model(&models.User{}).Count(&users)
	if users != 6 {
		t.Errorf("users after the import: got %d, want 6", users)
	}
}

func TestImportDjangoCommandErrors(t *testing.T) {
	c := newCLI(t)
	cases := []struct {
		name     string
		args     []string
		wantExit int
		wantText string
	}{
		{"no source", []string{"import-django"}, 2, "--from is required"},
		{"apitoken without a table", []string{"import-django", "--from", djangoFixture}, 1, "token table"},
		{"missing file", []string{"import-django", "--from", "nope.sqlite3", "--token-kind", "authtoken"}, 1, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := c.run("", tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if got := exitCode(err); got != tc.wantExit {
				t.Errorf("exit code: got %d, want %d (%v)", got, tc.wantExit, err)
			}
			if !strings.Contains(err.Error()+stderr, tc.wantText) {
				t.Errorf("message: got %q / %q, want it to mention %q", err, stderr, tc.wantText)
			}
		})
	}
}
