// Package apierror is the one place where errors become HTTP responses.
// Handlers return their errors (see Handle) and middlewares hand them to
// Abort; the error middleware, run once per request, answers with {"error", "code"[, "fields"]} and a status. Known
// errors keep their message; anything else becomes a 500 whose detail is
// logged and never sent.
package apierror

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/auth"
	"tokenauth/models"
	"tokenauth/password"
)

// Error is an error with its HTTP form.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
	// Header holds headers the response must carry, such as
	// WWW-Authenticate or Retry-After.
	Header map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an error with a status, a stable code and a message for
// humans.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// WithHeader returns a copy of e that sets a response header.
func (e *Error) WithHeader(name, value string) *Error {
	c := *e
	c.Header = map[string]string{name: value}
	for k, v := range e.Header {
		if k != name {
			c.Header[k] = v
		}
	}
	return &c
}

// Validation reports bad fields of the input.
func Validation(fields map[string]string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "validation_failed",
		Message: "The request has invalid fields.", Fields: fields}
}

// Errors with a fixed form, shared by handlers and middlewares.
var (
	ErrInvalidJSON  = New(http.StatusBadRequest, "invalid_json", "The request body must be one JSON object.")
	ErrBodyTooLarge = New(http.StatusRequestEntityTooLarge, "body_too_large", "The request body is too large.")
	ErrNotFound     = New(http.StatusNotFound, "not_found", "Not found.")
	ErrMethod       = New(http.StatusMethodNotAllowed, "method_not_allowed", "This method is not allowed here.")
	ErrForbidden    = New(http.StatusForbidden, "forbidden", "You may not change this resource.")
	ErrInternal     = New(http.StatusInternalServerError, "internal_error", "Something went wrong on our side.")
	ErrUnavailable  = New(http.StatusServiceUnavailable, "unavailable", "The service is temporarily unavailable; try again shortly.")
	ErrOrigin       = New(http.StatusForbidden, "origin_not_allowed", "Pages from this origin may not call the API.")
	ErrConflict     = New(http.StatusConflict, "conflict", "This conflicts with an existing resource.")
	ErrTokenLimit   = New(http.StatusConflict, "token_limit_reached", "You hold the maximum number of tokens; revoke one first.")
	ErrInvalidCreds = New(http.StatusUnauthorized, "invalid_credentials", "Invalid username or password.")
	ErrAccountOff   = New(http.StatusUnauthorized, "account_disabled", "This account is disabled.")
	ErrAuthRequired = New(http.StatusUnauthorized, "authentication_required", "Authentication is required: send Authorization: Bearer <token>.").WithHeader("WWW-Authenticate", `Bearer realm="api"`)
	ErrInvalidToken = New(http.StatusUnauthorized, "invalid_token", "The token is invalid, expired or revoked.").WithHeader("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
	// ErrIPNotAllowed answers a live token used from outside its allowed
	// networks.
	ErrIPNotAllowed  = New(http.StatusForbidden, "ip_not_allowed", "This token may not be used from this address.")
	ErrInvalidAuthzn = New(http.StatusBadRequest, "invalid_request", "The Authorization header is malformed: send exactly one Bearer token.").WithHeader("WWW-Authenticate", `Bearer realm="api", error="invalid_request"`)
	ErrTokenInURL    = New(http.StatusBadRequest, "invalid_request", "Tokens are accepted only in the Authorization header, never in the URL.").WithHeader("WWW-Authenticate", `Bearer realm="api", error="invalid_request"`)
	// ErrInvalidData names no field and quotes nothing: it answers a value
	// the database refused, which the checks at the edges should have
	// stopped, and it has nothing to do with the token (so no
	// WWW-Authenticate).
	ErrInvalidData = New(http.StatusBadRequest, "invalid_request", "The request holds a value that cannot be stored.")
)

// Errors of the links sent by mail.
var (
	ErrInvalidResetToken = New(http.StatusBadRequest, "invalid_reset_token",
		"This password reset link is invalid, used, replaced by a newer one, or expired: ask for a new one.")
	ErrInvalidVerificationToken = New(http.StatusBadRequest, "invalid_verification_token",
		"This link is invalid, used, replaced by a newer one, or expired: ask for a new one.")
	ErrEmailNotVerified = New(http.StatusForbidden, "email_not_verified",
		"Your email address is not verified yet. A link was mailed to it: follow it, then sign in again. "+
			"Each sign-in with the right password mails a new link (a few an hour at most).")
	ErrNoEmailToVerify = New(http.StatusForbidden, "email_not_verified",
		"Your account has no email address to verify: ask an operator to set one (tokenauth setemail).")
	ErrEmailTaken = New(http.StatusConflict, "conflict", "Another account has verified this email address.")
)

// Errors of the second factor.
var (
	ErrMFAEnabled = New(http.StatusConflict, "mfa_already_enabled",
		"Two-factor authentication is on already: turn it off first to enrol another device.")
	ErrMFANotEnabled = New(http.StatusConflict, "mfa_not_enabled",
		"Two-factor authentication is not on (or no enrolment is under way): start one with POST /api/mfa/totp/.")
	ErrInvalidMFACode = New(http.StatusUnauthorized, "invalid_mfa_code",
		"The code is wrong or used already; try the next code your app shows, or a recovery code.")
	ErrInvalidMFAToken = New(http.StatusUnauthorized, "invalid_mfa_token",
		"This sign-in has expired, was used, or had too many wrong codes: sign in with your password again.")
)

// InsufficientScope is the 403 for a token that lacks scope.
func InsufficientScope(scope string) *Error {
	return New(http.StatusForbidden, "insufficient_scope", "This token lacks the scope "+scope+".").
		WithHeader("WWW-Authenticate", `Bearer realm="api", error="insufficient_scope", scope="`+scope+`"`)
}

// ReauthenticationRequired is the 401 of a sensitive action asked by a
// token whose holder proved the password longer than maxAge ago, in the
// form of RFC 9470 (step-up authentication): the token stays valid, and
// POST /api/reauth/ with the password makes it fresh again.
func ReauthenticationRequired(maxAge time.Duration) *Error {
	seconds := strconv.FormatInt(int64(maxAge/time.Second), 10)
	return New(http.StatusUnauthorized, "reauthentication_required",
		"This action needs a recent proof of your password: send it to POST /api/reauth/, then try again. Your token still works.").
		WithHeader("WWW-Authenticate", `Bearer realm="api", error="insufficient_user_authentication", `+
			`error_description="A more recent authentication is required", max_age=`+seconds)
}

// RateLimited is the 429 for a client over a limit, with Retry-After in
// whole seconds (rounded up, so a client that waits that long gets through).
func RateLimited(wait time.Duration) *Error {
	seconds := max(int64((wait+time.Second-1)/time.Second), 1)
	return New(http.StatusTooManyRequests, "rate_limited", "Too many attempts; try again later.").
		WithHeader("Retry-After", strconv.FormatInt(seconds, 10))
}

// Abort records err for the error middleware to render, and stops the
// handler chain.
func Abort(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// HandlerFunc is a handler that returns its error instead of rendering it.
type HandlerFunc func(c *gin.Context) error

// Handle adapts h to Gin: an error it returns is handed to Abort, so every
// error is rendered in one place.
func Handle(h HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			Abort(c, err)
		}
	}
}

// From resolves any error to its HTTP form. The second result is false when
// the error was not one the service knows, so its detail must be logged.
func From(err error) (*Error, bool) {
	var (
		apiErr  *Error
		stale   *auth.ReauthRequired
		invalid *models.ValidationError
		tooBig  *http.MaxBytesError
		tooMany *models.TooManyLinksError
		limited *auth.RateLimitedError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr, true
	case errors.As(err, &invalid):
		return Validation(invalid.Fields), true
	case errors.As(err, &stale):
		return ReauthenticationRequired(stale.MaxAge), true
	case errors.As(err, &tooBig):
		return ErrBodyTooLarge, true
	case errors.Is(err, auth.ErrNoToken):
		return ErrAuthRequired, true
	case errors.Is(err, auth.ErrMalformedHeader):
		return ErrInvalidAuthzn, true
	case errors.Is(err, auth.ErrInvalidToken):
		return ErrInvalidToken, true
	case errors.Is(err, auth.ErrIPNotAllowed):
		return ErrIPNotAllowed, true
	case errors.As(err, &limited):
		return RateLimited(limited.RetryAfter), true
	case errors.Is(err, models.ErrNotFound):
		return ErrNotFound, true
	case errors.As(err, &tooMany):
		return RateLimited(tooMany.RetryAfter), true
	case errors.Is(err, models.ErrConflict):
		return ErrConflict, true
	case errors.Is(err, models.ErrTokenLimit):
		return ErrTokenLimit, true
	case errors.Is(err, models.ErrInvalidCredentials):
		return ErrInvalidCreds, true
	case errors.Is(err, models.ErrAccountDisabled):
		return ErrAccountOff, true
	case errors.Is(err, models.ErrMFAEnabled):
		return ErrMFAEnabled, true
	case errors.Is(err, models.ErrMFANotEnabled):
		return ErrMFANotEnabled, true
	case errors.Is(err, models.ErrInvalidMFACode):
		return ErrInvalidMFACode, true
	case errors.Is(err, models.ErrInvalidMFAToken):
		return ErrInvalidMFAToken, true
	case errors.Is(err, models.ErrInvalidData):
		// The client's fault, but a check at the edges missed it: worth a
		// log line (which carries the SQLSTATE, not the value).
		return ErrInvalidData, false
	case errors.Is(err, models.ErrUnavailable), errors.Is(err, password.ErrNoSlot):
		// Known, but the cause is worth a log line.
		return ErrUnavailable, false
	}
	return ErrInternal, false
}

// Write sends e as the response.
func Write(c *gin.Context, e *Error) {
	for name, value := range e.Header {
		c.Header(name, value)
	}
	body := gin.H{"error": e.Message, "code": e.Code}
	if len(e.Fields) > 0 {
		body["fields"] = e.Fields
	}
	c.AbortWithStatusJSON(e.Status, body)
}
