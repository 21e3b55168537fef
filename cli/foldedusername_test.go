package cli

import (
	"strings"
	"testing"

	"tokenauth/models"
)

// createuser holds a username's folded form (NFKC, lower case) to its
// column as registration does: nine U+FDFA are nine letters and 162
// characters once folded.
func TestCreateUserRefusesAUsernameFoldedTooLong(t *testing.T) {
	c := newCLI(t)
	_, stderr, err := c.run("correct horse battery\n", "createuser", "--username", strings.Repeat("\ufdfa", 9))
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error()+stderr, "once normalised") {
		t.Fatalf("got %v (exit %d), stderr %q; want exit 1 naming the folded length", err, exitCode(err), stderr)
	}
	var users int64
	if err := openDB(t, c.url).ORM.Model(&models.User{}).Count(&users).Error; err != nil || users != 0 {
		t.Errorf("users stored: %d (%v), want none", users, err)
	}
	if _, _, err := c.run("correct horse battery\n", "createuser", "--username", strings.Repeat("\ufdfa", 8)); err != nil {
		t.Errorf("eight of them, 144 characters folded: %v", err)
	}
}
