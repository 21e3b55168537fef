package djangoimport

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"tokenauth/password"
)

// Report counts what an import did (or, in a dry run, would do).
type Report struct {
	DryRun bool
	// UsersImported were created; UsersSkipped had been imported by an
	// earlier run and were left as they are.
	UsersImported int
	UsersSkipped  int
	// Passwords counts the imported users by the scheme of their hash,
	// as password.ImportedScheme names it: never by any text of the hash.
	Passwords map[string]int
	// NoPasswordLogin names the imported users whose hash login cannot
	// check (Django's unusable password, an unsupported scheme, or a cost
	// beyond the limits login runs): they cannot log in with a password,
	// though their tokens work.
	NoPasswordLogin []string
	// WeakPasswords names the imported users whose hash login checks but
	// is cheap to crack (password.WeakImported): it stays as weak as it
	// was in Django until their first login here replaces it.
	WeakPasswords []string
	// TokensImported were created; TokensSkipped had been imported before
	// (even if rotated, revoked or pruned since); TokensExpired had expired
	// in Django and were left out.
	TokensImported int
	TokensSkipped  int
	TokensExpired  int
	// TokensIdle were imported but were last used longer ago than
	// TOKEN_IDLE_TIMEOUT, so the service refuses them.
	TokensIdle int
	// UsersOverTokenLimit hold more imported tokens than
	// MAX_TOKENS_PER_USER: their next login revokes the least recently
	// used ones.
	UsersOverTokenLimit int
}

// Print writes the report for an operator.
func (r *Report) Print(w io.Writer) {
	if r.DryRun {
		fmt.Fprintln(w, "dry run: nothing was written")
	}
	fmt.Fprintf(w, "users: %d imported, %d already imported\n", r.UsersImported, r.UsersSkipped)
	if len(r.Passwords) > 0 {
		schemes := make([]string, 0, len(r.Passwords))
		for s := range r.Passwords {
			schemes = append(schemes, s)
		}
		sort.Strings(schemes)
		parts := make([]string, len(schemes))
		for i, s := range schemes {
			parts[i] = fmt.Sprintf("%s %d", s, r.Passwords[s])
		}
		fmt.Fprintf(w, "password hashes: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "tokens: %d imported, %d already imported, %d expired (left out)\n",
		r.TokensImported, r.TokensSkipped, r.TokensExpired)
	if n := len(r.NoPasswordLogin); n > 0 {
		fmt.Fprintf(w, "warning: %d user(s) have no password this service can check and cannot log in with one (their tokens work): %s\n",
			n, strings.Join(listed(r.NoPasswordLogin), ", "))
	}
	if n := len(r.WeakPasswords); n > 0 {
		fmt.Fprintf(w, "warning: %d user(s) have a pbkdf2_sha256 hash of fewer than %d iterations, cheap to crack from a copy of either database "+
			"until their first login here replaces it: %s\n", n, password.MinPBKDF2Iterations, strings.Join(listed(r.WeakPasswords), ", "))
	}
	if r.TokensIdle > 0 {
		fmt.Fprintf(w, "warning: %d imported token(s) were last used longer ago than TOKEN_IDLE_TIMEOUT and will be refused; "+
			"import with --import-counts-as-use to count the import as their last use, or raise TOKEN_IDLE_TIMEOUT\n", r.TokensIdle)
	}
	if r.UsersOverTokenLimit > 0 {
		fmt.Fprintf(w, "warning: %d user(s) hold more imported tokens than MAX_TOKENS_PER_USER; their next login revokes the least recently used\n",
			r.UsersOverTokenLimit)
	}
}
