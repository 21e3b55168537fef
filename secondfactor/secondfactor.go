// Package secondfactor makes and checks the second factor of an account:
// time-based one-time codes (TOTP, RFC 6238: SHA-1, 6 digits, 30-second
// steps, one step of drift either way) through github.com/pquerna/otp, the
// QR code of their otpauth:// URI, and single-use recovery codes. It
// stores nothing: the models keep the secret sealed and the recovery codes
// hashed.
package secondfactor

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// The TOTP parameters every authenticator app supports.
const (
	// Period is the length of a time step.
	Period = 30 * time.Second
	// Skew is how many steps before and after the present one are accepted,
	// for clocks that drift and codes typed slowly.
	Skew = 1
	// Digits is the length of a code.
	Digits = 6
	// secretBytes is the secret's size: 160 bits, as RFC 4226 recommends
	// for HMAC-SHA-1.
	secretBytes = 20
	// qrSize is the side of the QR code image, in pixels.
	qrSize = 240
)

// Enrolment is a new TOTP secret, as an authenticator app takes it.
type Enrolment struct {
	// Secret is the key in base32, for typing by hand.
	Secret string
	// URL is the otpauth:// URI that the QR code holds.
	URL string
	// QR is a PNG image of the QR code, as a data: URL.
	QR string
}

// NewEnrolment makes a random secret for account at issuer, with its URI
// and QR code.
func NewEnrolment(issuer, account string) (Enrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(Period / time.Second),
		SecretSize: secretBytes, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader})
	if err != nil {
		return Enrolment{}, fmt.Errorf("making a TOTP secret: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return Enrolment{}, fmt.Errorf("drawing the QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("encoding the QR code: %w", err)
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL(),
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// Step is the number of the time step that t falls in.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Match checks code against the secret at now, within Skew steps, and
// returns the step it matched. Steps up to and including after are not
// tried: a code is accepted once, and neither it nor an older one can be
// replayed. A code that is not 6 digits matches nothing.
func Match(secret, code string, now time.Time, after int64) (int64, bool) {
	if !wellFormedCode(code) {
		return 0, false
	}
	present := Step(now)
	var matched int64
	found := 0
	// Every step is computed and compared, whatever matches, in constant
	// time.
	for step := present - Skew; step <= present+Skew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(Period/time.Second), 0),
			totp.ValidateOpts{Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		ok := subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > after
		if ok && found == 0 {
			matched, found = step, 1
		}
	}
	return matched, found == 1
}

func wellFormedCode(code string) bool {
	if len(code) != Digits {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// RecoveryCodeCount is how many recovery codes an account gets at once.
const RecoveryCodeCount = 10

// recoveryEncoding writes recovery codes in lower-case base32 (no 0, 1, 8
// or 9 to mistake for letters).
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewRecoveryCodes makes RecoveryCodeCount random codes of 10 characters
// (50 bits each), written as two groups of five: "k3m9q-x7v2a".
func NewRecoveryCodes() ([]string, error) {
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		raw := make([]byte, 7)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("reading recovery code entropy: %w", err)
		}
		s := recoveryEncoding.EncodeToString(raw)[:10]
		codes[i] = s[:5] + "-" + s[5:]
	}
	return codes, nil
}

// NormalizeRecoveryCode returns the code as it is hashed: lower case,
// without the dash and spaces people type or copy along with it. It
// returns "" for a string that cannot be a recovery code.
func NormalizeRecoveryCode(code string) string {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(code) != 10 {
		return ""
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return ""
		}
	}
	return code
}
