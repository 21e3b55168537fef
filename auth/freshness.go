package auth

import (
	"fmt"
	"time"

	"tokenauth/models"
)

// ReauthRequired is the refusal of a sensitive action to a token whose
// holder last proved the password longer than MaxAge ago (step-up
// authentication, RFC 9470). The token stays valid: POST /api/reauth/
// with the password makes it fresh again. It renders as 401
// reauthentication_required with WWW-Authenticate: Bearer
// error="insufficient_user_authentication", max_age=<seconds>.
type ReauthRequired struct {
	MaxAge time.Duration
}

func (e *ReauthRequired) Error() string {
	return fmt.Sprintf("reauthentication required: the password was last proved more than %s ago", e.MaxAge)
}

// freshAt tells whether a proof made at authenticated is recent enough at
// now under maxAge (0: every token is fresh). A token that never proved
// anything (authenticated nil: made before tokens recorded it, imported,
// or rotated from such a token) is stale.
func freshAt(authenticated *time.Time, now time.Time, maxAge time.Duration) bool {
	if maxAge <= 0 {
		return true
	}
	return authenticated != nil && now.Sub(*authenticated) < maxAge
}

// RequireFreshAuth returns nil when the request's token proved the
// password within REAUTH_MAX_AGE of the request, and *ReauthRequired
// otherwise. Routes that always need it declare it in their Access
// (routes.Access.Fresh); a handler whose need depends on the request (a
// change that loosens a token, say) calls it through
// middlewares.RequireFreshAuth before it changes anything.
func (id *Identity) RequireFreshAuth() error {
	if id.stale {
		return &ReauthRequired{MaxAge: id.reauthMaxAge}
	}
	return nil
}

// judgeFreshness records on id whether its token's proof is recent
// enough at now.
func (id *Identity) judgeFreshness(t *models.APIToken, now time.Time, maxAge time.Duration) {
	id.reauthMaxAge = maxAge
	id.stale = !freshAt(t.AuthenticatedAt, now, maxAge)
}
