package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// TokenController lets a user manage their own tokens.
type TokenController struct {
	db       *gorm.DB
	cfg      config.Config
	clock    clock.Clock
	resolver *auth.Resolver
	scopes   *models.ScopeCatalogue
}

// NewTokenController returns a TokenController that limits created tokens
// to the scopes of the catalogue, and shows last uses as the resolver
// knows them.
func NewTokenController(db *gorm.DB, cfg config.Config, clk clock.Clock, resolver *auth.Resolver, scopes *models.ScopeCatalogue) *TokenController {
	return &TokenController{db: db, cfg: cfg, clock: clk, resolver: resolver, scopes: scopes}
}

// List returns the user's live tokens, newest first, marking the current one.
func (tc *TokenController) List(c *gin.Context) error {
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	now := tc.clock.Now()
	list := newTokenList()
	err = models.EachLiveToken(requestContext(c), tc.db, cur.UserID, tc.cfg.TokenIdleTimeout, func(t *models.APIToken) {
		list.add(newTokenResponse(t, tc.resolver.Activity(t), cur.ID, now))
	})
	if err != nil {
		return err
	}
	list.render(c, http.StatusOK)
	return nil
}

// Current describes the token making the request, read afresh: the
// lookup that authenticated it leaves out its metadata and last client.
func (tc *TokenController) Current(c *gin.Context) error {
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	tok, err := models.FindToken(requestContext(c), tc.db, cur.UserID, cur.ID)
	if err != nil {
		return err
	}
	renderToken(c, http.StatusOK, newTokenResponse(tok, tc.resolver.Activity(tok), cur.ID, tc.clock.Now()))
	return nil
}

// rateLimitBody is a token's rate limit as clients write it.
type rateLimitBody struct {
	Requests int    `json:"requests" binding:"required,min=1,max=1000000000"`
	Per      string `json:"per" binding:"required,max=16"`
}

type tokenCreateRequest struct {
	Name          string          `json:"name" binding:"required,max=100,nocontrol"`
	Scopes        []string        `json:"scopes" binding:"omitempty,max=20,dive,max=64"`
	ExpiresInDays *int            `json:"expires_in_days" binding:"omitnil,min=1"`
	AllowedIPs    []string        `json:"allowed_ips" binding:"omitempty,max=20,dive,max=64"`
	Metadata      json.RawMessage `json:"metadata"`
	RateLimit     *rateLimitBody  `json:"rate_limit"`
}

// Create issues a named token, limited to the scopes asked for, and returns
// its secret this once. The new token inherits its creator's
// authentication time: it proves no more than the token that made it.
func (tc *TokenController) Create(c *gin.Context) error {
	var req tokenCreateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Scopes != nil && len(req.Scopes) == 0 {
		return apierror.Validation(map[string]string{"scopes": "must name at least one scope; leave it out for a full-access token"})
	}
	scopes, err := tc.scopes.Normalize(req.Scopes)
	if err != nil {
		return err
	}
	ttl := tc.cfg.TokenTTL
	if req.ExpiresInDays != nil {
		maxDays := int(tc.cfg.TokenMaxTTL / (24 * time.Hour))
		if *req.ExpiresInDays > maxDays {
			return apierror.Validation(map[string]string{"expires_in_days": fmt.Sprintf("must be at most %d", maxDays)})
		}
		ttl = time.Duration(*req.ExpiresInDays) * 24 * time.Hour
	}
	nets, err := parseAllowedIPs(req.AllowedIPs)
	if err != nil {
		return err
	}
	metadata, err := parseMetadata(req.Metadata)
	if err != nil {
		return err
	}
	limit, err := parseRateLimit(req.RateLimit)
	if err != nil {
		return err
	}
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	expires := tc.clock.Now().Add(ttl)
	tok, err := models.IssueToken(requestContext(c), tc.db, cur.UserID,
		models.TokenSpec{Name: req.Name, Kind: models.KindPersonal, Scopes: scopes, ExpiresAt: &expires,
			AuthenticatedAt: cur.AuthenticatedAt, AllowedIPs: nets, Metadata: metadata, RateLimit: limit},
		tokenPolicy(tc.cfg), false)
	if err != nil {
		return err
	}
	middlewares.NoStore(c)
	renderToken(c, http.StatusCreated, newTokenResponse(tok, auth.Activity{}, cur.ID, tc.clock.Now()))
	return nil
}

// tokenUpdateRequest is a PATCH of a token. allowed_ips, metadata and
// rate_limit are kept raw, so that null (remove) differs from absent
// (keep).
type tokenUpdateRequest struct {
	Name       *string         `json:"name" binding:"omitnil,min=1,max=100,nocontrol"`
	Enabled    *bool           `json:"enabled"`
	AllowedIPs json.RawMessage `json:"allowed_ips"`
	Metadata   json.RawMessage `json:"metadata"`
	RateLimit  json.RawMessage `json:"rate_limit"`
}

// Update changes any of a token's name, enabled state, allowed networks,
// metadata and rate limit.
func (tc *TokenController) Update(c *gin.Context) error {
	tok, cur, err := tc.find(c)
	if err != nil {
		return err
	}
	var req tokenUpdateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	patch := models.TokenPatch{Name: req.Name, Enabled: req.Enabled}
	if req.AllowedIPs != nil {
		var list []string
		if err := json.Unmarshal(req.AllowedIPs, &list); err != nil {
			return apierror.Validation(map[string]string{"allowed_ips": "must be a list of IP addresses or CIDRs, or null"})
		}
		if len(list) > models.MaxAllowedIPs {
			return apierror.Validation(map[string]string{"allowed_ips": fmt.Sprintf("must have at most %d items", models.MaxAllowedIPs)})
		}
		nets, err := parseAllowedIPs(list)
		if err != nil {
			return err
		}
		patch.AllowedIPs = &nets
	}
	if req.Metadata != nil {
		metadata, err := parseMetadata(req.Metadata)
		if err != nil {
			return err
		}
		patch.Metadata = &metadata
	}
	if req.RateLimit != nil {
		var body *rateLimitBody
		if err := json.Unmarshal(req.RateLimit, &body); err != nil {
			return apierror.Validation(map[string]string{"rate_limit": `must be {"requests": N, "per": "1m"} or null`})
		}
		if body != nil {
			if err := validateStruct(body, nil); err != nil {
				return prefixFields(err, "rate_limit")
			}
		}
		limit, err := parseRateLimit(body)
		if err != nil {
			return err
		}
		patch.RateLimit = &limit
	}
	if patch.Loosens(tok) {
		// Letting a token do more is sensitive: a stolen token must not
		// lift the limits put on the tokens it can reach.
		if err := middlewares.RequireFreshAuth(c); err != nil {
			return err
		}
	}
	if err := models.UpdateToken(requestContext(c), tc.db, tok, patch); err != nil {
		return err
	}
	renderToken(c, http.StatusOK, newTokenResponse(tok, tc.resolver.Activity(tok), cur.ID, tc.clock.Now()))
	return nil
}

type tokenRotateRequest struct {
	GraceSeconds *int64 `json:"grace_seconds" binding:"omitnil,min=0"`
}

// Rotate replaces a token's secret: the new one is returned this once.
// Without grace the old one stops working in the same transaction; with
// grace_seconds, it works that much longer.
func (tc *TokenController) Rotate(c *gin.Context) error {
	tok, cur, err := tc.find(c)
	if err != nil {
		return err
	}
	return tc.rotate(c, tok, cur)
}

// RotateCurrent rotates the token making the request: a client rolling
// its own key, whatever its scopes.
func (tc *TokenController) RotateCurrent(c *gin.Context) error {
	cur, err := middlewares.CurrentToken(c)
	if err != nil {
		return err
	}
	// Read afresh: the lookup leaves out the metadata the new token keeps.
	tok, err := models.FindToken(requestContext(c), tc.db, cur.UserID, cur.ID)
	if err != nil {
		return err
	}
	return tc.rotate(c, tok, cur)
}

func (tc *TokenController) rotate(c *gin.Context, tok, cur *models.APIToken) error {
	var req tokenRotateRequest
	if c.Request.ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			return err
		}
	}
	var grace time.Duration
	if req.GraceSeconds != nil {
		maxSeconds := int64(tc.cfg.TokenRotationMaxGrace / time.Second)
		if *req.GraceSeconds > maxSeconds {
			return apierror.Validation(map[string]string{"grace_seconds": fmt.Sprintf("must be at most %d (TOKEN_ROTATION_MAX_GRACE)", maxSeconds)})
		}
		grace = time.Duration(*req.GraceSeconds) * time.Second
	}
	next, err := models.RotateToken(requestContext(c), tc.db, tok, grace)
	if err != nil {
		return err
	}
	currentID := cur.ID
	if tok.ID == cur.ID {
		currentID = next.ID // the caller's key, renewed
	}
	middlewares.NoStore(c)
	renderToken(c, http.StatusCreated, newTokenResponse(next, auth.Activity{}, currentID, tc.clock.Now()))
	return nil
}

// Revoke revokes one of the user's tokens.
func (tc *TokenController) Revoke(c *gin.Context) error {
	tok, _, err := tc.find(c)
	if err != nil {
		return err
	}
	if _, err := models.RevokeTokens(requestContext(c), tc.db,
		models.RevokeQuery{UserID: tok.UserID, TokenID: tok.ID, Reason: models.RevokedByUser}); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// find loads the live token named by the :id parameter if it belongs to
// the user, and returns it with the token making the request. A
// non-numeric id, another user's token and a dead one are all 404: nothing
// tells them apart.
func (tc *TokenController) find(c *gin.Context) (tok, cur *models.APIToken, err error) {
	cur, err = middlewares.CurrentToken(c)
	if err != nil {
		return nil, nil, err
	}
	id, err := idParam(c)
	if err != nil {
		return nil, nil, err
	}
	tok, err = models.FindUserToken(requestContext(c), tc.db, cur.UserID, id, tc.cfg.TokenIdleTimeout)
	return tok, cur, err
}

// parseAllowedIPs reads the networks a token may be used from.
func parseAllowedIPs(list []string) (models.IPNets, error) {
	nets, err := models.ParseIPNets(list)
	if err != nil {
		return nil, apierror.Validation(map[string]string{"allowed_ips": err.Error()})
	}
	return nets, nil
}

// parseMetadata reads a token's metadata: a JSON object of at most
// models.MaxMetadataBytes as compact JSON, or null for none.
func parseMetadata(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	if raw[0] != '{' {
		return "", apierror.Validation(map[string]string{"metadata": "must be a JSON object, or null"})
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return "", apierror.Validation(map[string]string{"metadata": "must be a JSON object, or null"})
	}
	if compact.Len() > models.MaxMetadataBytes {
		return "", apierror.Validation(map[string]string{"metadata": fmt.Sprintf("must be at most %d bytes as compact JSON", models.MaxMetadataBytes)})
	}
	if compact.Len() == 2 {
		return "", nil // {} is none
	}
	return compact.String(), nil
}

// parseRateLimit reads a token's rate limit; nil is none.
func parseRateLimit(body *rateLimitBody) (models.RateLimit, error) {
	if body == nil {
		return models.RateLimit{}, nil
	}
	period, err := models.ParsePeriod(body.Per)
	if err != nil {
		return models.RateLimit{}, apierror.Validation(map[string]string{"rate_limit.per": err.Error()})
	}
	return models.RateLimit{Requests: body.Requests, Period: period}, nil
}

// prefixFields names the fields of a validation error as members of
// parent ("rate_limit.requests").
func prefixFields(err error, parent string) error {
	var apiErr *apierror.Error
	if !errors.As(err, &apiErr) || len(apiErr.Fields) == 0 {
		return err
	}
	fields := make(map[string]string, len(apiErr.Fields))
	for name, msg := range apiErr.Fields {
		fields[parent+"."+name] = msg
	}
	return apierror.Validation(fields)
}
