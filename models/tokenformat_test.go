package models

import (
	"hash/crc32"
	"math/big"
	"testing"
)

// The checksum is computed with integer arithmetic on the hot path; it must
// stay the base62 form of the CRC32 that issued tokens carry.
func TestTokenChecksumIsBase62OfCRC32(t *testing.T) {
	for i := range 200 {
		secret, err := NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		body := secret[:len(secret)-tokenChecksumChars]
		if i == 0 {
			body = TokenPrefix // the smallest bodies pad with zeros
		}
		want := base62(new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(body)))), tokenChecksumChars)
		if got := tokenChecksum(body); got != want {
			t.Fatalf("tokenChecksum(%q): got %q, want %q", body, got, want)
		}
		if !WellFormedToken(secret) {
			t.Fatalf("issued secret %q is not well formed", secret)
		}
	}
}
