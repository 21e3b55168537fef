package tests

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/models"
)

// stepUpFixture is a server on a fake clock, with a user logged in.
type stepUpFixture struct {
	*Server
	clock *clock.Fake
	user  *models.User
	token string
}

func newStepUpFixture(t *testing.T, opts ...Option) *stepUpFixture {
	t.Helper()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, append([]Option{WithApp(app.WithClock(clk))}, opts...)...)
	user, token := s.UserWithToken(t, "alice")
	return &stepUpFixture{Server: s, clock: clk, user: user, token: token}
}

// expectReauthRequired checks the RFC 9470 refusal: 401
// reauthentication_required with the challenge that names max_age.
func expectReauthRequired(t *testing.T, resp *Response, maxAge time.Duration) {
	t.Helper()
	resp.ExpectError(t, http.StatusUnauthorized, "reauthentication_required")
	challenge := resp.Header.Get("WWW-Authenticate")
	for _, want := range []string{`Bearer `, `error="insufficient_user_authentication"`,
		"max_age=" + strconv.Itoa(int(maxAge/time.Second))} {
		if !strings.Contains(challenge, want) {
			t.Errorf("WWW-Authenticate %q lacks %s", challenge, want)
		}
	}
}

// reauth sends the password to POST /api/reauth/ with the token.
func (f *stepUpFixture) reauth(t *testing.T, token, password string) *Response {
	t.Helper()
	return f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: token, Body: map[string]string{"password": password}})
}

// Each sensitive action works right after the login, is refused once
// REAUTH_MAX_AGE has passed (the token still working for everything
// else), and works again after POST /api/reauth/.
func TestStepUpGuardsSensitiveActions(t *testing.T) {
	t.Parallel()
	actions := []struct {
		name   string
		action func(f *stepUpFixture, token string) Request
		want   int
		// signsOut: the action revokes the user's tokens, so the user
		// logs in again after it.
		signsOut bool
	}{
		{"create a token", func(f *stepUpFixture, token string) Request {
			return Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": "ci"}}
		}, http.StatusCreated, false},
		{"rotate a token", func(f *stepUpFixture, token string) Request {
			other := f.IssueToken(t, f.user)
			id := f.Do(t, Request{Path: "/api/tokens/current/", Token: other}).Expect(t, http.StatusOK).JSON(t)["id"].(float64)
			return Request{Method: "POST", Path: "/api/tokens/" + strconv.Itoa(int(id)) + "/rotate/", Token: token}
		}, http.StatusCreated, false},
		{"change the email", func(f *stepUpFixture, token string) Request {
			return Request{Method: "PATCH", Path: "/api/profile/", Token: token, Body: map[string]string{"email": "new@example.com"}}
		}, http.StatusAccepted, false},
		{"log out everywhere", func(f *stepUpFixture, token string) Request {
			return Request{Method: "POST", Path: "/api/logout-all/", Token: token}
		}, http.StatusNoContent, true},
	}
	for _, tc := range actions {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newStepUpFixture(t)
			maxAge := f.Config.ReauthMaxAge

			// Fresh from the login, just inside the window.
			f.clock.Advance(maxAge - time.Second)
			f.Do(t, tc.action(f, f.token)).Expect(t, tc.want)
			if tc.signsOut {
				f.token = f.Login(t, "alice", testPassword)
				f.clock.Advance(maxAge - time.Second)
			}

			// Stale: refused, and the token still works.
			f.clock.Advance(2 * time.Second)
			expectReauthRequired(t, f.Do(t, tc.action(f, f.token)), maxAge)
			f.Do(t, Request{Path: "/api/tokens/", Token: f.token}).Expect(t, http.StatusOK)

			// A wrong password proves nothing; the right one does.
			body := f.reauth(t, f.token, "not the password").ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, "password")
			expectReauthRequired(t, f.Do(t, tc.action(f, f.token)), maxAge)
			f.reauth(t, f.token, testPassword).Expect(t, http.StatusNoContent)
			f.Do(t, tc.action(f, f.token)).Expect(t, tc.want)
		})
	}
}

// A token created with the API proves no more than its creator: it
// carries the creator's authentication time, so it goes stale when the
// creator's does, and making tokens cannot extend a proof.
func TestCreatedTokensInheritTheProof(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	maxAge := f.Config.ReauthMaxAge
	f.clock.Advance(maxAge - 2*time.Second)
	child := f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: f.token,
		Body: map[string]any{"name": "child"}}).Expect(t, http.StatusCreated).JSON(t)["token"].(string)
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: child, Body: map[string]any{"name": "grandchild"}}).
		Expect(t, http.StatusCreated)
	f.clock.Advance(3 * time.Second)
	expectReauthRequired(t, f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: child,
		Body: map[string]any{"name": "late"}}), maxAge)

	// Its own proof then makes it fresh, and it alone.
	f.reauth(t, child, testPassword).Expect(t, http.StatusNoContent)
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: child, Body: map[string]any{"name": "now"}}).Expect(t, http.StatusCreated)
	expectReauthRequired(t, f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: f.token,
		Body: map[string]any{"name": "still stale"}}), maxAge)

	// Rotation carries the proof over: the new secret is as fresh as the
	// old one was.
	f.reauth(t, f.token, testPassword).Expect(t, http.StatusNoContent)
	stale := f.IssueToken(t, f.user)
	var staleID float64
	f.Do(t, Request{Path: "/api/tokens/current/", Token: stale}).Expect(t, http.StatusOK).Decode(t, &struct {
		ID *float64 `json:"id"`
	}{&staleID})
	f.clock.Advance(maxAge / 2)
	f.reauth(t, f.token, testPassword).Expect(t, http.StatusNoContent)
	rotated := f.Do(t, Request{Method: "POST", Path: "/api/tokens/" + strconv.Itoa(int(staleID)) + "/rotate/", Token: f.token}).
		Expect(t, http.StatusCreated).JSON(t)["token"].(string)
	f.clock.Advance(maxAge/2 + time.Second)
	expectReauthRequired(t, f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: rotated,
		Body: map[string]any{"name": "from the rotated"}}), maxAge)
}

// A token that never proved the password (made before tokens recorded it,
// or imported) is stale, and a narrow token cannot prove it at all: only
// a full-scope token can re-authenticate, so a narrow or old token never
// reaches a sensitive action without the password.
func TestOldAndNarrowTokensNeverReachSensitiveActions(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	expires := f.clock.Now().Add(time.Hour)
	old, err := models.IssueToken(t.Context(), f.DB, f.user.ID,
		models.TokenSpec{Name: "from before", Kind: models.KindPersonal, Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires},
		models.TokenPolicy{MaxPerUser: 50}, false)
	if err != nil {
		t.Fatal(err)
	}
	expectReauthRequired(t, f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: old.Secret,
		Body: map[string]any{"name": "x"}}), f.Config.ReauthMaxAge)
	f.reauth(t, old.Secret, testPassword).Expect(t, http.StatusNoContent)
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: old.Secret, Body: map[string]any{"name": "x"}}).
		Expect(t, http.StatusCreated)

	narrow := f.IssueToken(t, f.user, "profile:write")
	f.reauth(t, narrow, testPassword).ExpectError(t, http.StatusForbidden, "insufficient_scope")
	f.clock.Advance(f.Config.ReauthMaxAge)
	expectReauthRequired(t, f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: narrow,
		Body: map[string]string{"email": "elsewhere@example.com"}}), f.Config.ReauthMaxAge)
	// The address it has already is no change and needs no proof.
	f.Do(t, Request{Method: "PATCH", Path: "/api/profile/", Token: narrow,
		Body: map[string]string{"email": "ALICE@example.com"}}).Expect(t, http.StatusOK)
}

// REAUTH_MAX_AGE=0 turns the requirement off: even a token that never
// proved anything may act.
func TestStepUpOff(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.ReauthMaxAge = 0 }))
	expires := f.clock.Now().Add(48 * time.Hour)
	old, err := models.IssueToken(t.Context(), f.DB, f.user.ID,
		models.TokenSpec{Name: "from before", Kind: models.KindPersonal, Scopes: models.Scopes{models.ScopeAll}, ExpiresAt: &expires},
		models.TokenPolicy{MaxPerUser: 50}, false)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(24 * time.Hour)
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: old.Secret, Body: map[string]any{"name": "x"}}).
		Expect(t, http.StatusCreated)
	f.Do(t, Request{Method: "POST", Path: "/api/logout-all/", Token: f.token}).Expect(t, http.StatusNoContent)
}

// A password change carries the current password, which is the proof:
// it needs no fresh token, and leaves the token fresh.
func TestPasswordChangeIsAProof(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	f.clock.Advance(f.Config.ReauthMaxAge + time.Minute)
	f.Do(t, Request{Method: "POST", Path: "/api/password/", Token: f.token,
		Body: map[string]string{"current_password": testPassword, "new_password": "another sturdy passphrase"}}).
		Expect(t, http.StatusNoContent)
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: f.token, Body: map[string]any{"name": "x"}}).
		Expect(t, http.StatusCreated)
}

// Re-authentication is counted as a login: wrong passwords are failed
// logins of the user (events, lockout), a locked username is refused
// even the right password, and the lock holds for logins too.
func TestReauthCountsLikeALogin(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.LoginUserFailures = 3 }))
	f.reauth(t, f.token, testPassword).Expect(t, http.StatusNoContent)
	for range 3 {
		f.reauth(t, f.token, "wrong guess").ExpectError(t, http.StatusBadRequest, "validation_failed")
	}
	resp := f.reauth(t, f.token, testPassword)
	resp.ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
		ExpectError(t, http.StatusTooManyRequests, "rate_limited")

	var events []models.SecurityEvent
	if err := f.DB.Where("user_id = ?", f.user.ID).Order("id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range events {
		count[e.Type]++
	}
	// Only the first, right, password was a re-authentication.
	if count[models.EventReauthenticated] != 1 || count[models.EventLoginFailed] != 3 || count[models.EventLoginRateLimited] != 2 {
		t.Errorf("got events %v, want 1 reauthenticated, 3 login_failed and 2 login_rate_limited", count)
	}
}

// The client IP's budget of logins covers re-authentication: they guess
// the same secrets.
func TestReauthSpendsTheLoginBudget(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.LoginIPPerMinute = 3 }))
	// The login of the fixture spent one.
	f.reauth(t, f.token, testPassword).Expect(t, http.StatusNoContent)
	f.reauth(t, f.token, "wrong").ExpectError(t, http.StatusBadRequest, "validation_failed")
	f.reauth(t, f.token, testPassword).ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
		ExpectError(t, http.StatusTooManyRequests, "rate_limited")
}

// TestSpecFreshAuthMatchesTheRoutes holds x-fresh-auth to the routes: an
// operation marked true refuses a full-scope token that never proved the
// password with 401 reauthentication_required before anything else about
// the request is judged, and an unmarked one never answers that. An
// operation whose x-fresh-auth names a condition is tested on its own.
func TestSpecFreshAuthMatchesTheRoutes(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.MaxTokensPerUser = 10000 }))
	openAPIParam := regexp.MustCompile(`\{(\w+)\}`)
	expires := f.clock.Now().Add(time.Hour)
	marked := 0
	for path, item := range f.contract.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil || len(*op.Security) == 0 {
				continue
			}
			fresh := op.Extensions["x-fresh-auth"]
			if _, conditional := fresh.(string); conditional {
				continue
			}
			scope, _ := op.Extensions["x-required-scope"].(string)
			if scope == "" {
				scope = models.ScopeAll
			}
			stale, err := models.IssueToken(t.Context(), f.DB, f.user.ID,
				models.TokenSpec{Name: "stale", Kind: models.KindPersonal, Scopes: models.Scopes{scope}, ExpiresAt: &expires},
				models.TokenPolicy{MaxPerUser: 10000}, false)
			if err != nil {
				t.Fatal(err)
			}
			p := openAPIParam.ReplaceAllString(path, "1")
			resp := f.Do(t, Request{Method: method, Path: p, Token: stale.Secret})
			if fresh == true {
				marked++
				expectReauthRequired(t, resp, f.Config.ReauthMaxAge)
			} else if resp.Status == http.StatusUnauthorized && strings.Contains(string(resp.Body), "reauthentication_required") {
				t.Errorf("%s %s asks for a fresh proof, but the spec does not mark it x-fresh-auth", method, path)
			}
		}
	}
	if marked < 3 {
		t.Errorf("only %d operations are marked x-fresh-auth: true", marked)
	}
}
