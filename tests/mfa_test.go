package tests

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"tokenauth/config"
	"tokenauth/models"
)

// code is the TOTP code of secret at the fixture's present time, computed
// by the library, as an authenticator app computes it.
func (f *stepUpFixture) code(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol turns TOTP on for the fixture's user through the API, and returns
// the secret and the recovery codes. The clock then moves to the next
// time step, so that the code used to confirm is not the next one asked.
func (f *stepUpFixture) enrol(t *testing.T) (string, []string) {
	t.Helper()
	var e struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
		QR         string `json:"qr"`
	}
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/totp/", Token: f.token}).Expect(t, http.StatusOK).Decode(t, &e)
	if !strings.HasPrefix(e.OTPAuthURL, "otpauth://totp/") || !strings.Contains(e.OTPAuthURL, "secret="+e.Secret) ||
		!strings.HasPrefix(e.QR, "data:image/png;base64,") {
		t.Fatalf("enrolment: %+v", e)
	}
	var codes struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/totp/confirm/", Token: f.token,
		Body: map[string]string{"code": f.code(t, e.Secret)}}).Expect(t, http.StatusOK).Decode(t, &codes)
	if len(codes.RecoveryCodes) != 10 {
		t.Fatalf("got %d recovery codes, want 10", len(codes.RecoveryCodes))
	}
	f.clock.Advance(30 * time.Second)
	return e.Secret, codes.RecoveryCodes
}

// passwordStep logs in with the password and returns the mfa_token of the
// 401 mfa_required.
func (f *stepUpFixture) passwordStep(t *testing.T) string {
	t.Helper()
	resp := f.Do(t, Request{Method: "POST", Path: "/api/login/",
		Body: map[string]string{"username": "alice", "password": testPassword, "token_name": "Phone"}})
	body := resp.ExpectError(t, http.StatusUnauthorized, "mfa_required")
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("mfa_required without Cache-Control: no-store")
	}
	if _, has := body["token"]; has {
		t.Fatalf("the password alone got a token: %v", body)
	}
	methods, _ := body["methods"].([]any)
	if len(methods) != 2 || methods[0] != "totp" || methods[1] != "recovery_code" {
		t.Errorf("methods: %v", body["methods"])
	}
	if exp, _ := time.Parse(time.RFC3339, body["expires_at"].(string)); !exp.Equal(f.clock.Now().Add(5 * time.Minute)) {
		t.Errorf("expires_at %v, want five minutes from now", body["expires_at"])
	}
	mfaToken, _ := body["mfa_token"].(string)
	if mfaToken == "" {
		t.Fatalf("no mfa_token: %v", body)
	}
	return mfaToken
}

func (f *stepUpFixture) secondStep(t *testing.T, mfaToken string, proof map[string]string) *Response {
	t.Helper()
	body := map[string]string{"mfa_token": mfaToken}
	for k, v := range proof {
		body[k] = v
	}
	return f.Do(t, Request{Method: "POST", Path: "/api/login/mfa/", Body: body})
}

func (f *stepUpFixture) eventCount(t *testing.T, typ string) int64 {
	t.Helper()
	var n int64
	if err := f.DB.Model(&models.SecurityEvent{}).Where("user_id = ? AND type = ?", f.user.ID, typ).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// Enrolment turns the second factor on only once a code proves the
// device; from then on a login takes the password and a code (or a
// recovery code, once), each code is accepted once, and the other
// sessions signed in without it are gone.
func TestTOTPEnrolmentAndLogin(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	otherSession := f.Login(t, "alice", testPassword)
	created := f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: f.token,
		Body: map[string]any{"name": "ci"}}).Expect(t, http.StatusCreated).JSON(t)["token"].(string)

	// Started but not confirmed: nothing is on.
	var e struct {
		Secret string `json:"secret"`
	}
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/totp/", Token: f.token}).Expect(t, http.StatusOK).Decode(t, &e)
	if f.Do(t, Request{Path: "/api/profile/", Token: f.token}).Expect(t, http.StatusOK).JSON(t)["mfa_enabled"] != false {
		t.Error("mfa_enabled before the confirmation")
	}
	f.Login(t, "alice", testPassword)
	body := f.Do(t, Request{Method: "POST", Path: "/api/mfa/totp/confirm/", Token: f.token,
		Body: map[string]string{"code": "000000"}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "code")

	secret, recovery := f.enrol(t)
	if f.Do(t, Request{Path: "/api/profile/", Token: f.token}).Expect(t, http.StatusOK).JSON(t)["mfa_enabled"] != true {
		t.Error("mfa_enabled is not true after the confirmation")
	}
	// The other session is revoked; the enrolling token and the created
	// one are not.
	f.Do(t, Request{Path: "/api/tokens/current/", Token: otherSession}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	f.Do(t, Request{Path: "/api/tokens/current/", Token: f.token}).Expect(t, http.StatusOK)
	f.Do(t, Request{Path: "/api/tokens/current/", Token: created}).Expect(t, http.StatusOK)
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/totp/", Token: f.token}).ExpectError(t, http.StatusConflict, "mfa_already_enabled")

	// A login with a code answers what a login answers.
	code := f.code(t, secret)
	login := f.secondStep(t, f.passwordStep(t), map[string]string{"code": code}).Expect(t, http.StatusOK).JSON(t)
	token, _ := login["token"].(string)
	current := f.Do(t, Request{Path: "/api/tokens/current/", Token: token}).Expect(t, http.StatusOK).JSON(t)
	if current["name"] != "Phone" || !slices.Equal(toStrings(current["scopes"]), []string{"*"}) || login["token_type"] != "Bearer" {
		t.Errorf("the token of a login with a code: %v, %v", login, current)
	}
	// It is fresh, as a login's token is.
	f.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: token, Body: map[string]any{"name": "x"}}).Expect(t, http.StatusCreated)

	// The same code, within its window, does not work twice.
	f.secondStep(t, f.passwordStep(t), map[string]string{"code": code}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_code")

	// A recovery code works once, in any spelling.
	mfaToken := f.passwordStep(t)
	f.secondStep(t, mfaToken, map[string]string{"recovery_code": " " + strings.ToUpper(recovery[3]) + " "}).Expect(t, http.StatusOK)
	f.secondStep(t, f.passwordStep(t), map[string]string{"recovery_code": recovery[3]}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_code")
	// The mfa_token is single-use.
	f.clock.Advance(30 * time.Second)
	f.secondStep(t, mfaToken, map[string]string{"code": f.code(t, secret)}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_token")

	// Exactly one of the two.
	body = f.secondStep(t, f.passwordStep(t), map[string]string{"code": f.code(t, secret), "recovery_code": recovery[4]}).
		ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "code")
	body = f.secondStep(t, f.passwordStep(t), nil).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "code")

	for typ, want := range map[string]int64{models.EventMFAEnabled: 1, models.EventRecoveryCodeUsed: 1, models.EventMFAFailed: 2} {
		if got := f.eventCount(t, typ); got != want {
			t.Errorf("%d %s events, want %d", got, typ, want)
		}
	}
	var revoked models.APIToken
	if err := f.DB.Where("revoked_reason = ?", models.RevokedByMFAEnabled).Take(&revoked).Error; err != nil {
		t.Errorf("no token revoked with reason %s: %v", models.RevokedByMFAEnabled, err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// An mfa_token lives five minutes, and dies of five wrong codes; each
// wrong code counts in the username's lockout, which the password step
// never clears and a right code does.
func TestMFATokenLimitsAndTheLockout(t *testing.T) {
	t.Parallel()
	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		f := newStepUpFixture(t)
		secret, _ := f.enrol(t)
		mfaToken := f.passwordStep(t)
		f.clock.Advance(5*time.Minute + time.Second)
		f.secondStep(t, mfaToken, map[string]string{"code": f.code(t, secret)}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_token")
		f.secondStep(t, "tkm_unknown", map[string]string{"code": "123456"}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_token")
	})
	t.Run("five wrong codes", func(t *testing.T) {
		t.Parallel()
		f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.LoginUserFailures = 6 }))
		secret, _ := f.enrol(t)
		mfaToken := f.passwordStep(t)
		right := f.code(t, secret)
		wrong := "000000"
		if right == wrong {
			wrong = "111111"
		}
		for range 5 {
			f.secondStep(t, mfaToken, map[string]string{"code": wrong}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_code")
		}
		f.secondStep(t, mfaToken, map[string]string{"code": right}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_token")
		// Five failures counted; the password step of a new login counted
		// none and cleared none, and one wrong password locks the name.
		f.passwordStep(t)
		f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
			ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}}).
			ExpectError(t, http.StatusTooManyRequests, "rate_limited")
		if got := f.eventCount(t, models.EventMFAFailed); got != 5 {
			t.Errorf("%d mfa_failed events, want 5", got)
		}
	})
	t.Run("a right code clears the count", func(t *testing.T) {
		t.Parallel()
		f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.LoginUserFailures = 3 }))
		secret, _ := f.enrol(t)
		for range 2 {
			f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
				ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		}
		f.secondStep(t, f.passwordStep(t), map[string]string{"code": f.code(t, secret)}).Expect(t, http.StatusOK)
		for range 2 {
			f.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
				ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		}
		f.passwordStep(t)
	})
	t.Run("a locked name gets no second step", func(t *testing.T) {
		t.Parallel()
		f := newStepUpFixture(t, WithConfig(func(c *config.Config) { c.LoginUserFailures = 2 }))
		secret, _ := f.enrol(t)
		mfaToken := f.passwordStep(t)
		for range 2 {
			f.secondStep(t, f.passwordStep(t), map[string]string{"code": "000000"})
		}
		f.secondStep(t, mfaToken, map[string]string{"code": f.code(t, secret)}).ExpectError(t, http.StatusTooManyRequests, "rate_limited")
	})
}

// With a second factor, re-authentication takes a code as well.
func TestReauthWithASecondFactor(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	secret, recovery := f.enrol(t)
	f.clock.Advance(f.Config.ReauthMaxAge)
	expectReauthRequired(t, f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}), f.Config.ReauthMaxAge)

	body := f.reauth(t, f.token, testPassword).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "code")
	body = f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": testPassword, "code": "000000"}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "code")
	body = f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": "wrong", "code": f.code(t, secret)}}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "password")
	f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": testPassword, "code": f.code(t, secret)}}).Expect(t, http.StatusNoContent)

	// Fresh now: new recovery codes void the old ones, then it goes off.
	var codes struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/recovery-codes/", Token: f.token}).Expect(t, http.StatusOK).Decode(t, &codes)
	if len(codes.RecoveryCodes) != 10 || slices.Contains(codes.RecoveryCodes, recovery[0]) {
		t.Errorf("new recovery codes: %v", codes.RecoveryCodes)
	}
	f.secondStep(t, f.passwordStep(t), map[string]string{"recovery_code": recovery[0]}).ExpectError(t, http.StatusUnauthorized, "invalid_mfa_code")
	f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}).Expect(t, http.StatusNoContent)
	f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}).ExpectError(t, http.StatusConflict, "mfa_not_enabled")
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/recovery-codes/", Token: f.token}).ExpectError(t, http.StatusConflict, "mfa_not_enabled")
	f.Login(t, "alice", testPassword)
	for typ, want := range map[string]int64{models.EventMFADisabled: 1, models.EventRecoveryCodesRegenerated: 1, models.EventReauthenticated: 1} {
		if got := f.eventCount(t, typ); got != want {
			t.Errorf("%d %s events, want %d", got, typ, want)
		}
	}
}

// The TOTP secret is sealed at rest: it is in no row of any table, in
// base32 or in raw bytes, and not in the SQLite file.
func TestTOTPSecretIsNotStoredInClear(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, f *stepUpFixture) {
		secret, recovery := f.enrol(t)
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(secret, "="))
		if err != nil {
			t.Fatal(err)
		}
		needles := map[string][]byte{"the secret": []byte(secret), "its bytes": raw, "its lower case": []byte(strings.ToLower(secret)),
			"a recovery code": []byte(recovery[0]), "a recovery code's letters": []byte(strings.ReplaceAll(recovery[0], "-", ""))}
		// A dump: every row of every table, as JSON.
		var dump bytes.Buffer
		for _, model := range models.All() {
			var rows []map[string]any
			if err := f.DB.Model(model).Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if err := json.NewEncoder(&dump).Encode(rows); err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				for _, v := range row {
					if b, ok := v.([]byte); ok {
						dump.Write(b)
					}
				}
			}
		}
		if !bytes.Contains(dump.Bytes(), []byte("totp")) && !bytes.Contains(dump.Bytes(), []byte("v1.")) {
			t.Fatal("the dump holds no sealed value: it read nothing")
		}
		for what, needle := range needles {
			if bytes.Contains(dump.Bytes(), needle) {
				t.Errorf("the database dump holds %s", what)
			}
		}
		if config.IsPostgres(f.Config.DatabaseURL) {
			return
		}
		var file []byte
		for _, suffix := range []string{"", "-wal", "-journal"} {
			b, err := os.ReadFile(f.Config.DatabaseURL + suffix)
			if err == nil {
				file = append(file, b...)
			}
		}
		if len(file) == 0 {
			t.Fatal("read nothing of the SQLite file")
		}
		for what, needle := range needles {
			if bytes.Contains(file, needle) {
				t.Errorf("the SQLite file holds %s", what)
			}
		}
	}
	t.Run("the configured database", func(t *testing.T) {
		t.Parallel()
		check(t, newStepUpFixture(t))
	})
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "scan.db")
		check(t, newStepUpFixture(t, WithConfig(func(c *config.Config) { c.DatabaseURL = path })))
	})
}

// Turning the second factor off, and using a recovery code, are mailed to
// the user.
func TestMFANoticesAreMailed(t *testing.T) {
	t.Parallel()
	m := newMailFixture(t)
	m.createUserWithEmail(t, "alice", "alice@example.com")
	user, err := models.FindUserByUsername(t.Context(), m.DB, "alice")
	if err != nil {
		t.Fatal(err)
	}
	f := &stepUpFixture{Server: m.Server, clock: m.clock, user: user, token: m.Login(t, "alice", testPassword)}
	secret, recovery := f.enrol(t)
	f.secondStep(t, f.passwordStep(t), map[string]string{"recovery_code": recovery[0]}).Expect(t, http.StatusOK)
	f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}).Expect(t, http.StatusNoContent)
	m.waitForOutbox(t)
	var subjects []string
	for _, got := range m.mail.MailsTo("alice@example.com") {
		subjects = append(subjects, got.Subject)
		if strings.Contains(got.Text, secret) || strings.Contains(got.Text, recovery[0]) {
			t.Errorf("the mail %q holds a secret", got.Subject)
		}
	}
	for _, want := range []string{"A recovery code was used", "Two-factor authentication was turned off"} {
		if !slices.ContainsFunc(subjects, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no mail %q among %q", want, subjects)
		}
	}
}

// The second step of a login counts with the logins; re-authentications
// and changes of the second factor have counters of their own.
func TestMFAMetrics(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	secret, _ := f.enrol(t)
	f.secondStep(t, f.passwordStep(t), map[string]string{"code": "000000"})
	f.secondStep(t, f.passwordStep(t), map[string]string{"code": f.code(t, secret)}).Expect(t, http.StatusOK)
	f.secondStep(t, "tkm_unknown", map[string]string{"code": "123456"})
	f.clock.Advance(30 * time.Second)
	f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": "wrong", "code": f.code(t, secret)}}).Expect(t, http.StatusBadRequest)
	f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": testPassword, "code": "000000"}}).Expect(t, http.StatusBadRequest)
	f.Do(t, Request{Method: "POST", Path: "/api/reauth/", Token: f.token,
		Body: map[string]string{"password": testPassword, "code": f.code(t, secret)}}).Expect(t, http.StatusNoContent)
	f.Do(t, Request{Method: "POST", Path: "/api/mfa/recovery-codes/", Token: f.token}).Expect(t, http.StatusOK)
	f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}).Expect(t, http.StatusNoContent)

	m := f.scrape(t)
	expectSample(t, m, `tokenauth_logins_total{outcome="mfa_required"}`, 2)
	expectSample(t, m, `tokenauth_logins_total{outcome="invalid_mfa_code"}`, 1)
	expectSample(t, m, `tokenauth_logins_total{outcome="invalid_mfa_token"}`, 1)
	// The fixture's login, and the second step.
	expectSample(t, m, `tokenauth_logins_total{outcome="succeeded"}`, 2)
	expectSample(t, m, `tokenauth_reauthentications_total{outcome="invalid_password"}`, 1)
	expectSample(t, m, `tokenauth_reauthentications_total{outcome="invalid_code"}`, 1)
	expectSample(t, m, `tokenauth_reauthentications_total{outcome="succeeded"}`, 1)
	expectSample(t, m, `tokenauth_mfa_changes_total{change="enrolled"}`, 1)
	expectSample(t, m, `tokenauth_mfa_changes_total{change="recovery_codes_regenerated"}`, 1)
	expectSample(t, m, `tokenauth_mfa_changes_total{change="disabled"}`, 1)
}

// With a second factor, a password change does not make the token fresh:
// the current password it carries proves only half of what a
// re-authentication asks.
func TestPasswordChangeIsNoProofWithASecondFactor(t *testing.T) {
	t.Parallel()
	f := newStepUpFixture(t)
	f.enrol(t)
	f.clock.Advance(f.Config.ReauthMaxAge)
	f.Do(t, Request{Method: "POST", Path: "/api/password/", Token: f.token,
		Body: map[string]string{"current_password": testPassword, "new_password": "another sturdy passphrase"}}).
		Expect(t, http.StatusNoContent)
	expectReauthRequired(t, f.Do(t, Request{Method: "DELETE", Path: "/api/mfa/totp/", Token: f.token}), f.Config.ReauthMaxAge)
}
