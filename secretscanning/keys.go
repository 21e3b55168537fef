// Package secretscanning checks the reports of GitHub's secret scanning
// partner programme: GitHub finds a token of ours in public code and
// POSTs it, signed with ECDSA P-256 over the raw body, to our receiver
// (POST /api/github/secret-scanning), which revokes it. The public keys
// come from GITHUB_SECRET_SCANNING_KEYS: a file in GitHub's format, or a
// URL (GitHub's is https://api.github.com/meta/public_keys/secret_scanning)
// fetched when needed and kept for an hour.
package secretscanning

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Setting is the name of the setting that says where the keys are.
const Setting = "GITHUB_SECRET_SCANNING_KEYS"

// cacheFor is how long keys fetched from a URL are used before they are
// fetched again; an unknown key id fetches them again sooner, at most
// once per refetchAfter.
const (
	cacheFor     = time.Hour
	refetchAfter = time.Minute
	fetchTimeout = 10 * time.Second
	maxKeysBytes = 1 << 20
)

// Errors of Verify.
var (
	// ErrBadSignature is a report whose signature does not verify, or
	// whose headers are missing or malformed.
	ErrBadSignature = errors.New("the report's signature does not verify")
	// ErrUnknownKey is a report signed with a key id that the keys do not
	// hold.
	ErrUnknownKey = errors.New("the report is signed with an unknown key")
	// ErrKeysUnavailable means the keys could not be fetched.
	ErrKeysUnavailable = errors.New("the secret scanning keys cannot be fetched")
)

// keysDocument is GitHub's format.
type keysDocument struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
	} `json:"public_keys"`
}

// Keys are GitHub's public keys, by id, from a file or a URL.
type Keys struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	fetchedAt time.Time
	triedAt   time.Time
}

// Load returns the keys that source (the setting's value) names: a file,
// read now, or an http(s) URL, fetched when first needed. Plain http is
// taken only for a loopback host (a local mirror, the tests). Errors name
// the setting.
func Load(source string, now func() time.Time) (*Keys, error) {
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		u, err := url.Parse(source)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%s: %q is not a URL", Setting, source)
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%s: fetch the keys over https:// (plain http only from this machine)", Setting)
		}
		return &Keys{url: source, client: &http.Client{Timeout: fetchTimeout}, now: now}, nil
	}
	raw, err := os.ReadFile(source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Setting, err)
	}
	keys, err := parseKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", Setting, source, err)
	}
	return &Keys{keys: keys, now: now}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseKeys reads GitHub's JSON document of ECDSA P-256 keys in PEM.
func parseKeys(raw []byte) (map[string]*ecdsa.PublicKey, error) {
	var doc keysDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not GitHub's JSON document of public keys: %w", err)
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(k.Key))
		if block == nil || k.KeyIdentifier == "" {
			return nil, fmt.Errorf("key %q: no PEM public key", k.KeyIdentifier)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.KeyIdentifier, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %q: not an ECDSA P-256 key", k.KeyIdentifier)
		}
		keys[k.KeyIdentifier] = ec
	}
	if len(keys) == 0 {
		return nil, errors.New("no public keys")
	}
	return keys, nil
}

// Verify checks that body was signed by the key keyID with signature
// (base64 of an ASN.1 ECDSA signature over SHA-256 of the body), as
// GitHub's headers Github-Public-Key-Identifier and
// Github-Public-Key-Signature say.
func (k *Keys) Verify(ctx context.Context, keyID, signature string, body []byte) error {
	if keyID == "" || signature == "" {
		return ErrBadSignature
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	pub, err := k.key(ctx, keyID)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// key returns the key keyID, fetching the keys when they are old or do
// not hold it.
func (k *Keys) key(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pub, ok := k.keys[keyID]; ok && (k.url == "" || k.now().Sub(k.fetchedAt) < cacheFor) {
		return pub, nil
	}
	if k.url == "" {
		return nil, ErrUnknownKey
	}
	if k.keys == nil || k.now().Sub(k.triedAt) >= refetchAfter || k.now().Sub(k.fetchedAt) >= cacheFor {
		k.triedAt = k.now()
		keys, err := k.fetch(ctx)
		switch {
		case err == nil:
			k.keys, k.fetchedAt = keys, k.now()
		case k.keys == nil:
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		}
		// On a failed refetch the keys held are kept.
	}
	if pub, ok := k.keys[keyID]; ok {
		return pub, nil
	}
	return nil, ErrUnknownKey
}

func (k *Keys) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", k.url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBytes))
	if err != nil {
		return nil, err
	}
	return parseKeys(raw)
}
