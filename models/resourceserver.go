package models

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Resource-server clients: the services behind a proxy that ask tokenauth
// about tokens (POST /oauth/introspect) and revoke them (POST
// /oauth/revoke), authenticating with HTTP Basic (RFC 6749, section
// 2.3.1). The operator makes them (tokenauth client create).
const (
	// ClientIDPrefix starts every client id.
	ClientIDPrefix = "tkc_"
	// ClientSecretPrefix starts every client secret, so that secret
	// scanners can tell one from a token.
	ClientSecretPrefix = "tkcs_"
	clientIDChars      = 22 // about 131 bits: ids are not secret, but never guessed either
	// ClientNameMaxLength is the longest client name, in characters.
	ClientNameMaxLength = 100
)

// ResourceServer is a resource server allowed to introspect and revoke tokens. Only
// the SHA-256 of its secret is stored: the secret has 256 random bits, so
// a fast hash is enough and no password-hash slot is spent on it.
type ResourceServer struct {
	ID         uint   `gorm:"primaryKey"`
	ClientID   string `gorm:"size:32;not null;uniqueIndex"`
	Name       string `gorm:"size:100;not null"`
	SecretHash string `gorm:"size:64;not null" json:"-"`
	CreatedAt  time.Time
	RevokedAt  *time.Time

	// Secret is the plain secret, in memory only, right after the client
	// is made, to be shown once.
	Secret string `gorm:"-" json:"-"`
}

// NewResourceServer makes a client named name, with a fresh id and secret; Create
// stores it.
func NewResourceServer(name string) (*ResourceServer, error) {
	if name == "" || len([]rune(name)) > ClientNameMaxLength || storableText(name, ClientNameMaxLength) != name {
		return nil, invalid("name", fmt.Sprintf("a client name is 1 to %d printable characters", ClientNameMaxLength))
	}
	id, err := randomBase62(16, clientIDChars)
	if err != nil {
		return nil, err
	}
	secret, err := randomBase62(tokenEntropyBytes, tokenBodyLength)
	if err != nil {
		return nil, err
	}
	c := &ResourceServer{ClientID: ClientIDPrefix + id, Name: name, Secret: ClientSecretPrefix + secret}
	c.SecretHash = HashToken(c.Secret)
	return c, nil
}

// clientIDShape tells whether id could be a client id: the prefix, then 1
// to clientIDChars base62 characters.
func clientIDShape(id string) bool {
	body, ok := strings.CutPrefix(id, ClientIDPrefix)
	if !ok || body == "" || len(body) > clientIDChars {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !isBase62(body[i]) {
			return false
		}
	}
	return true
}

// CreateClient stores c.
func CreateClient(ctx context.Context, db *gorm.DB, c *ResourceServer) error {
	return translate(db.WithContext(ctx).Create(c).Error)
}

// ListClients returns every client, revoked ones included, oldest first.
func ListClients(ctx context.Context, db *gorm.DB) ([]ResourceServer, error) {
	var clients []ResourceServer
	err := db.WithContext(ctx).Order("id").Find(&clients).Error
	return clients, translate(err)
}

// RevokeClient stops the client with that id from authenticating. It is
// ErrNotFound when no live client has the id.
func RevokeClient(ctx context.Context, db *gorm.DB, clientID string) error {
	res := db.WithContext(ctx).Model(&ResourceServer{}).Where("client_id = ? AND revoked_at IS NULL", clientID).
		Update("revoked_at", nowOf(db))
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// unknownClientHash is compared against when no client has the id asked
// for, so that an unknown id costs the same work as a wrong secret.
var unknownClientHash = HashToken("")

// AuthenticateClient returns the live client with that id and secret, or
// ErrInvalidCredentials. The secret is hashed and compared in constant
// time whether or not the id exists.
//
// An id that does not have the shape of a client id (which is no secret)
// is refused without a query: nothing a database would refuse to compare,
// such as bytes that are not UTF-8, ever reaches it.
func AuthenticateClient(ctx context.Context, db *gorm.DB, clientID, secret string) (*ResourceServer, error) {
	if !clientIDShape(clientID) {
		return nil, ErrInvalidCredentials
	}
	var c ResourceServer
	err := db.WithContext(ctx).Where("client_id = ? AND revoked_at IS NULL", clientID).Take(&c).Error
	if err = translate(err); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	want := c.SecretHash
	if err != nil {
		want = unknownClientHash
	}
	got := HashToken(secret)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || err != nil {
		return nil, ErrInvalidCredentials
	}
	return &c, nil
}
