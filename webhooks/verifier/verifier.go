// Package verifier checks the signature of a tokenauth webhook: the
// Tokenauth-Signature header, t=UNIX,v1=HEX, where HEX is HMAC-SHA256 of
// the string t + "." + body under the endpoint's signing secret. A
// receiver in Go can import it or copy this file (docs/WEBHOOKS.md).
package verifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidSignature means the header is missing or malformed, or no v1
// signature in it matches the body.
var ErrInvalidSignature = errors.New("webhook: invalid signature")

// ErrTooOld means the signature is valid but its time is further than the
// tolerance from now: a replay of an old delivery.
var ErrTooOld = errors.New("webhook: signature too old")

// Verify checks header (the Tokenauth-Signature value) against the raw
// body and secret (as printed by tokenauth webhook add, whsec_ included).
// It refuses a signature made more than tolerance before or after now; 5
// minutes is a good tolerance.
func Verify(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	var timestamp string
	var signatures [][]byte
	for _, part := range strings.Split(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch key {
		case "t":
			timestamp = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				signatures = append(signatures, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || len(signatures) == 0 {
		return ErrInvalidSignature
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	expected := mac.Sum(nil)
	valid := false
	for _, sig := range signatures {
		if hmac.Equal(sig, expected) {
			valid = true
		}
	}
	if !valid {
		return ErrInvalidSignature
	}
	if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return ErrTooOld
	}
	return nil
}
