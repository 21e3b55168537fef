package models

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode/utf8"

	"tokenauth/password"
)

//go:embed common_passwords.txt
var commonPasswordList string

// commonPasswords is read once from the embedded list; it is never written
// after start-up.
var commonPasswords = func() map[string]struct{} {
	set := map[string]struct{}{}
	for _, line := range strings.Split(commonPasswordList, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			set[line] = struct{}{}
		}
	}
	return set
}()

// PasswordPolicy is the rule a new password must follow: long enough, not
// too long to hash cheaply, not the username, not a common password. There
// are no composition rules (NIST SP 800-63B).
type PasswordPolicy struct {
	MinLength int
}

// Check returns a ValidationError on field "password" when plain breaks
// the policy for a user called username.
func (p PasswordPolicy) Check(plain, username string) error {
	return p.check("password", plain, username)
}

func (p PasswordPolicy) check(field, plain, username string) error {
	n := utf8.RuneCountInString(plain)
	switch {
	case n < p.MinLength:
		return invalid(field, fmt.Sprintf("must be at least %d characters", p.MinLength))
	case n > password.MaxLength:
		return invalid(field, fmt.Sprintf("must be at most %d characters", password.MaxLength))
	case username != "" && UsernameKey(plain) == UsernameKey(username):
		return invalid(field, "must not be the username")
	}
	if _, common := commonPasswords[strings.ToLower(plain)]; common {
		return invalid(field, "is too common; choose a less guessable password")
	}
	return nil
}
