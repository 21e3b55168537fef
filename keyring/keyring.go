// Package keyring holds the server's secret key and what is made from it:
// keyed hashes (HMAC-SHA256) and sealed values (AES-256-GCM), each under a
// subkey of its own purpose, so that no two uses share a key.
//
// The key is SECRET_KEY when it is set, else a random key generated on the
// first migrate and kept in the database: a SQLite deployment needs no
// setting, and instances that share a database share the key. Instances
// that share Redis but not a database set SECRET_KEY.
//
// A check value sealed under the key in use is kept in the database. A key
// that cannot open it stops start-up: secrets sealed under the old key
// would be unreadable, and keyed hashes would no longer match.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"tokenauth/models"
)

// MinKeyLength is the shortest SECRET_KEY accepted, in bytes.
const MinKeyLength = 32

// Keyring derives the subkeys of every purpose from one secret key.
type Keyring struct {
	secret []byte
}

// New returns a Keyring on secret, which must be at least MinKeyLength
// bytes of high entropy.
func New(secret []byte) (*Keyring, error) {
	if len(secret) < MinKeyLength {
		return nil, fmt.Errorf("the secret key must be at least %d bytes", MinKeyLength)
	}
	return &Keyring{secret: secret}, nil
}

// checkPurpose and checkText make the check value.
const (
	checkPurpose = "keyring check"
	checkText    = "tokenauth"
)

// Load returns the keyring of the service on db: under configured (the
// SECRET_KEY setting) when it is not empty, else under the key that
// migrate stored. The first start records a check value; a later start
// whose key cannot open it fails with an error that says so.
func Load(ctx context.Context, db *gorm.DB, configured string) (*Keyring, error) {
	secret := []byte(configured)
	if configured == "" {
		stored, err := models.FindServerSecret(ctx, db, models.SecretKeyName)
		if errors.Is(err, models.ErrNotFound) {
			return nil, errors.New("no secret key in the database: run tokenauth migrate")
		}
		if err != nil {
			return nil, fmt.Errorf("reading the secret key: %w", err)
		}
		if secret, err = base64.StdEncoding.DecodeString(stored); err != nil {
			return nil, fmt.Errorf("the stored secret key is damaged: %w", err)
		}
	}
	k, err := New(secret)
	if err != nil {
		return nil, fmt.Errorf("SECRET_KEY: %w", err)
	}
	sealed, err := k.Seal(checkPurpose, []byte(checkText))
	if err != nil {
		return nil, err
	}
	if err := models.PutServerSecretOnce(ctx, db, models.SecretKeyCheckName, sealed); err != nil {
		return nil, fmt.Errorf("recording the secret key's check value: %w", err)
	}
	check, err := models.FindServerSecret(ctx, db, models.SecretKeyCheckName)
	if err != nil {
		return nil, fmt.Errorf("reading the secret key's check value: %w", err)
	}
	if opened, err := k.Open(checkPurpose, check); err != nil || string(opened) != checkText {
		if configured != "" {
			return nil, errors.New("SECRET_KEY: this key is not the one that sealed the secrets in this database " +
				"(TOTP secrets, webhook signing secrets); start with the key used before")
		}
		return nil, errors.New("the secret key stored in this database is not the one that sealed its secrets; " +
			"was SECRET_KEY set before? Set it again")
	}
	return k, nil
}

// subkey derives the key of a purpose.
func (k *Keyring) subkey(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.secret, nil, "tokenauth "+purpose, 32)
	if err != nil {
		panic(err) // only for a length HKDF cannot give, which 32 is not
	}
	return key
}

// HMAC returns HMAC-SHA256 of msg under the subkey of purpose.
func (k *Keyring) HMAC(purpose string, msg []byte) []byte {
	mac := hmac.New(sha256.New, k.subkey(purpose))
	mac.Write(msg)
	return mac.Sum(nil)
}

// sealedPrefix starts every sealed value: the format's version.
const sealedPrefix = "v1."

// Seal encrypts plaintext under the subkey of purpose (AES-256-GCM, a
// random nonce, the purpose as additional data) and returns it as text.
func (k *Keyring) Seal(purpose string, plaintext []byte) (string, error) {
	aead, err := k.aead(purpose)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(purpose))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// ErrUnsealable is the error of Open for a value it cannot open: sealed
// under another key or purpose, or damaged.
var ErrUnsealable = errors.New("cannot open the sealed value: another key or purpose, or damaged")

// Open decrypts a value made by Seal with the same purpose.
func (k *Keyring) Open(purpose, sealed string) ([]byte, error) {
	text, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return nil, ErrUnsealable
	}
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, ErrUnsealable
	}
	aead, err := k.aead(purpose)
	if err != nil {
		return nil, err
	}
	if len(raw) < aead.NonceSize() {
		return nil, ErrUnsealable
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}

func (k *Keyring) aead(purpose string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.subkey(purpose))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
