package verifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

const (
	secret = "whsec_test-secret"
	body   = `{"id":1,"type":"login_succeeded"}`
)

// sign makes a header the way the documentation says the service does.
func sign(secret, ts, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + body))
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerify(t *testing.T) {
	at := time.Unix(1767225600, 0)
	good := sign(secret, "1767225600", body)
	tests := []struct {
		name   string
		header string
		body   string
		secret string
		now    time.Time
		want   error
	}{
		{"valid", good, body, secret, at, nil},
		{"valid, within tolerance", good, body, secret, at.Add(4 * time.Minute), nil},
		{"valid among other signatures", "t=1767225600,v1=00,v0=abc,v1=" + good[len("t=1767225600,v1="):], body, secret, at, nil},
		{"body changed by one byte", good, body[:len(body)-1] + " ", secret, at, ErrInvalidSignature},
		{"another secret", good, body, "whsec_other", at, ErrInvalidSignature},
		{"too old", good, body, secret, at.Add(6 * time.Minute), ErrTooOld},
		{"from the future", good, body, secret, at.Add(-6 * time.Minute), ErrTooOld},
		{"time changed", "t=1767225601" + good[len("t=1767225600"):], body, secret, at, ErrInvalidSignature},
		{"no header", "", body, secret, at, ErrInvalidSignature},
		{"no v1", "t=1767225600", body, secret, at, ErrInvalidSignature},
		{"no t", good[len("t=1767225600,"):], body, secret, at, ErrInvalidSignature},
		{"garbage", "t=x,v1=zz", body, secret, at, ErrInvalidSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.header, []byte(tc.body), tc.secret, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}
