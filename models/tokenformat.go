package models

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
	"unsafe"
)

// The token format: "tka_", 32 random bytes in base62 (43 characters), then
// a 6-character base62 CRC32 of everything before it. The prefix lets secret
// scanners recognise a leaked token; the checksum lets a mistyped or made-up
// token be refused without asking the database.
const (
	TokenPrefix        = "tka_"
	tokenEntropyBytes  = 32
	tokenBodyLength    = 43
	tokenChecksumChars = 6
	// TokenLength is the length of every secret in this format.
	TokenLength = len(TokenPrefix) + tokenBodyLength + tokenChecksumChars
	// DisplayPrefixLength is how much of a secret is kept to recognise it:
	// "tka_" and 8 characters, far too little to guess the rest.
	DisplayPrefixLength = 12
)

const base62Digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// NewTokenSecret returns a fresh secret from crypto/rand, in the token
// format. Tokens are issued with it; bench/ seeds known secrets with it.
func NewTokenSecret() (string, error) { return newPrefixedSecret(TokenPrefix) }

// newPrefixedSecret returns a fresh secret in the token format with
// another prefix of the same length: the secrets of links and of the
// second step of a login are made like tokens, and told apart by it.
func newPrefixedSecret(prefix string) (string, error) {
	body, err := randomBase62(tokenEntropyBytes, tokenBodyLength)
	if err != nil {
		return "", err
	}
	body = prefix + body
	return body + tokenChecksum(body), nil
}

// randomBase62 returns entropyBytes from crypto/rand as chars base62
// digits.
func randomBase62(entropyBytes, chars int) (string, error) {
	entropy := make([]byte, entropyBytes)
	if _, err := rand.Read(entropy); err != nil {
		return "", fmt.Errorf("reading entropy: %w", err)
	}
	return base62(new(big.Int).SetBytes(entropy), chars), nil
}

// WellFormedToken tells whether s has the shape and checksum of a token,
// without any database work.
func WellFormedToken(s string) bool { return wellFormedSecret(s, TokenPrefix) }

// wellFormedSecret tells whether s has the shape and checksum of a secret
// made by newPrefixedSecret with prefix. It allocates nothing: every
// request's token passes through it.
func wellFormedSecret(s, prefix string) bool {
	if len(s) != TokenLength || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		if !isBase62(s[i]) {
			return false
		}
	}
	body := s[:len(s)-tokenChecksumChars]
	sum := checksumDigits(body)
	return string(sum[:]) == s[len(body):]
}

// HashToken is the lookup key stored for a secret (a token, a client's
// secret): SHA-256, hex. The secret has 256 random bits, so a fast hash is
// enough: nobody can try them all.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func tokenChecksum(body string) string {
	sum := checksumDigits(body)
	return string(sum[:])
}

// checksumDigits is the checksum of body. It runs on every request, so it
// allocates nothing: the CRC is computed over the string's own bytes (the
// crc32 package wants a []byte, which a string converts to by copying to
// the heap; crc32 only reads them), and the digits come from integer
// arithmetic. A CRC32 fits in 6 base62 digits.
func checksumDigits(body string) [tokenChecksumChars]byte {
	n := crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(body), len(body)))
	var out [tokenChecksumChars]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = base62Digits[n%62]
		n /= 62
	}
	return out
}

// base62 writes n in base62, left-padded with zeros to width characters.
func base62(n *big.Int, width int) string {
	out := make([]byte, width)
	for i := range out {
		out[i] = '0'
	}
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := width - 1; i >= 0 && n.Sign() > 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62Digits[mod.Int64()]
	}
	return string(out)
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
