package secondfactor

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestMatchAcceptsOneStepOfDriftAndNoReplay(t *testing.T) {
	e, err := NewEnrolment("tokenauth", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.URL, "otpauth://totp/tokenauth:alice?") || !strings.Contains(e.URL, "secret="+e.Secret) ||
		!strings.HasPrefix(e.QR, "data:image/png;base64,") {
		t.Fatalf("enrolment: %+v", e)
	}
	now := time.Date(2030, 1, 1, 12, 0, 10, 0, time.UTC)
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(e.Secret, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name  string
		at    time.Time
		after int64
		want  bool
	}{
		{"present step", now, 0, true},
		{"previous step", now.Add(-Period), 0, true},
		{"next step", now.Add(Period), 0, true},
		{"two steps ago", now.Add(-2 * Period), 0, false},
		{"two steps ahead", now.Add(2 * Period), 0, false},
		{"the step already used", now, Step(now), false},
		{"an older step than the one used", now.Add(-Period), Step(now), false},
		{"a later step than the one used", now.Add(Period), Step(now), true},
	}
	for _, tc := range cases {
		step, ok := Match(e.Secret, code(tc.at), now, tc.after)
		if ok != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, ok, tc.want)
		}
		if ok && step != Step(tc.at) {
			t.Errorf("%s: matched step %d, want %d", tc.name, step, Step(tc.at))
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", "１２３４５６"} {
		if _, ok := Match(e.Secret, bad, now, 0); ok {
			t.Errorf("%q matched", bad)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, err := NewRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		n := NormalizeRecoveryCode(c)
		if len(c) != 11 || n == "" || seen[n] {
			t.Errorf("code %q (normalized %q)", c, n)
		}
		seen[n] = true
		if NormalizeRecoveryCode(" "+strings.ToUpper(c)+" ") != n || NormalizeRecoveryCode(strings.ReplaceAll(c, "-", "")) != n {
			t.Errorf("%q: spellings do not normalize alike", c)
		}
	}
	if len(codes) != RecoveryCodeCount {
		t.Errorf("got %d codes", len(codes))
	}
	for _, bad := range []string{"", "abcde-fghi", "abcde-fghi1", "abcde-fghij-k", "abcdé-fghij"} {
		if NormalizeRecoveryCode(bad) != "" {
			t.Errorf("%q normalized", bad)
		}
	}
}

// The codes of Debian's oathtool, which the README shows for making codes
// by hand, are the codes Match accepts, from the secret of an enrolment.
func TestOathtoolCodesMatch(t *testing.T) {
	e, err := NewEnrolment("tokenauth", "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{time.Date(2030, 1, 1, 12, 0, 10, 0, time.UTC), time.Now().UTC().Truncate(time.Second)} {
		out, err := exec.Command("oathtool", "--totp", "-b", e.Secret, "-N", at.Format("2006-01-02 15:04:05 UTC")).Output()
		if err != nil {
			t.Fatalf("oathtool (Debian's oathtool package): %v", err)
		}
		code := strings.TrimSpace(string(out))
		if step, ok := Match(e.Secret, code, at, 0); !ok || step != Step(at) {
			t.Errorf("oathtool's code %s at %s: matched %v (step %d)", code, at, ok, step)
		}
	}
}
