package controllers

import (
	"encoding/json"
	"time"

	"tokenauth/auth"
	"tokenauth/models"
)

// The response bodies. Models are never rendered directly: these DTOs name
// every field a client sees, so no hash can slip out.

type userResponse struct {
	ID            uint       `json:"id"`
	Username      string     `json:"username"`
	Email         string     `json:"email"`
	EmailVerified bool       `json:"email_verified"`
	MFAEnabled    bool       `json:"mfa_enabled"`
	IsActive      bool       `json:"is_active"`
	CreatedAt     time.Time  `json:"created_at"`
	LastLoginAt   *time.Time `json:"last_login_at"`
}

func newUserResponse(u *models.User) userResponse {
	return userResponse{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified(),
		MFAEnabled: u.MFAEnabled(), IsActive: u.IsActive, CreatedAt: u.CreatedAt.UTC().Truncate(time.Second), LastLoginAt: utc(u.LastLoginAt)}
}

// emailChangeResponse answers a change of address that waits for its link
// to be followed.
type emailChangeResponse struct {
	PendingEmail string       `json:"pending_email"`
	User         userResponse `json:"user"`
}

// loginUser is the short form of a user in a login response.
type loginUser struct {
	ID            uint   `json:"id"`
	Username      string `json:"username"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

type loginResponse struct {
	Token     string     `json:"token"`
	TokenType string     `json:"token_type"`
	ExpiresAt *time.Time `json:"expires_at"`
	// NewClient warns that this login came from an IP address and user
	// agent not seen for the user lately.
	NewClient bool      `json:"new_client"`
	User      loginUser `json:"user"`
}

type tokenResponse struct {
	ID         uint       `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// LastIP and LastUserAgent are the client of the last recorded use;
	// Networks the last networks it was used from, newest first.
	LastIP        *string            `json:"last_ip"`
	LastUserAgent *string            `json:"last_user_agent"`
	Networks      models.NetworkUses `json:"networks"`
	ExpiresAt     *time.Time         `json:"expires_at"`
	// PreviousSecretExpiresAt, after a rotation with grace, is until when
	// the previous secret still works.
	PreviousSecretExpiresAt *time.Time      `json:"previous_secret_expires_at"`
	Current                 bool            `json:"current"`
	Enabled                 bool            `json:"enabled"`
	AllowedIPs              []string        `json:"allowed_ips"`
	Metadata                json.RawMessage `json:"metadata"`
	RateLimit               *rateLimit      `json:"rate_limit"`
	// Legacy marks a token imported from Django with its old key: the
	// client should rotate it to get a tka_ token.
	Legacy bool `json:"legacy"`
	// Token is the secret, present only in the response that creates it.
	Token string `json:"token,omitempty"`
}

// rateLimit is a token's own rate limit as clients read it.
type rateLimit struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
}

func newTokenResponse(t *models.APIToken, activity auth.Activity, currentID uint, now time.Time) tokenResponse {
	r := tokenResponse{ID: t.ID, Name: t.Name, Prefix: t.Prefix, Scopes: t.Scopes,
		CreatedAt: t.CreatedAt.UTC().Truncate(time.Second), LastUsedAt: utc(activity.LastUsedAt),
		Networks: activity.Networks, ExpiresAt: utc(t.ExpiresAt),
		Current: t.ID == currentID, Enabled: t.PausedAt == nil, AllowedIPs: t.AllowedIPs.Strings(),
		Legacy: t.Kind == models.KindLegacy, Token: t.Secret}
	if r.Networks == nil {
		r.Networks = models.NetworkUses{}
	}
	if activity.LastIP != "" {
		r.LastIP, r.LastUserAgent = &activity.LastIP, &activity.LastUserAgent
	}
	if p := t.PreviousExpiresAt; p != nil && p.After(now) {
		r.PreviousSecretExpiresAt = utc(p)
	}
	if t.Metadata != "" {
		r.Metadata = json.RawMessage(t.Metadata)
	}
	if l := t.RateLimit(); !l.IsZero() {
		r.RateLimit = &rateLimit{Requests: l.Requests, Per: models.FormatPeriod(l.Period)}
	}
	return r
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}
