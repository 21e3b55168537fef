package controllers

import (
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/metrics"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// OAuthController answers the OAuth routes that resource servers use:
// introspection (RFC 7662), revocation (RFC 7009) and the metadata that
// names them (RFC 8414). They answer in their RFCs' formats, not the API's
// (errors as {"error": "invalid_client"}, times in Unix seconds).
type OAuthController struct {
	db       *gorm.DB
	resolver *auth.Resolver
	clock    clock.Clock
	metrics  *metrics.Metrics
	log      *slog.Logger
	// perClient limits what one client may ask; perIP what a caller
	// without client authentication may.
	perClient, perIP middlewares.RateLimiter
	metadata         gin.H
}

// NewOAuthController returns an OAuthController. perClient budgets the
// requests of each resource-server client, perIP the revocations of
// callers without client authentication, by client network.
func NewOAuthController(db *gorm.DB, cfg config.Config, r *auth.Resolver, clk clock.Clock, m *metrics.Metrics,
	log *slog.Logger, perClient, perIP middlewares.RateLimiter) *OAuthController {
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	return &OAuthController{db: db, resolver: r, clock: clk, metrics: m, log: log, perClient: perClient, perIP: perIP,
		metadata: gin.H{
			"issuer":                 base,
			"introspection_endpoint": base + "/oauth/introspect",
			"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
			"revocation_endpoint":                           base + "/oauth/revoke",
			"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "none"},
			// Tokens are issued by the login, not an authorization endpoint.
			"response_types_supported": []string{},
			"grant_types_supported":    []string{},
		}}
}

// The RFC 6749 (section 5.2) errors these routes answer.
var (
	errOAuthInvalidClient  = &oauthError{status: http.StatusUnauthorized, code: "invalid_client"}
	errOAuthInvalidRequest = &oauthError{status: http.StatusBadRequest, code: "invalid_request"}
)

type oauthError struct {
	status int
	code   string
}

func (e *oauthError) Error() string { return e.code }

// writeOAuthError answers e in the RFC's form; a client that failed to
// authenticate is told how to (RFC 6749, section 5.2).
func writeOAuthError(c *gin.Context, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Basic realm="tokenauth"`)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(e.status, gin.H{"error": e.code})
}

// client authenticates the request's HTTP Basic client, if it sends
// credentials. It returns nil without error when there are none (or the
// caller presents a bearer token, which authenticates no client), and
// errOAuthInvalidClient when they are wrong or of another scheme.
func (oc *OAuthController) client(c *gin.Context) (*models.ResourceServer, error) {
	header := c.Request.Header.Values("Authorization")
	if len(header) == 0 {
		return nil, nil
	}
	if scheme, _, _ := strings.Cut(strings.TrimSpace(header[0]), " "); len(header) == 1 && strings.EqualFold(scheme, "Bearer") {
		return nil, nil
	}
	id, secret, ok := c.Request.BasicAuth()
	if !ok || len(header) > 1 {
		return nil, errOAuthInvalidClient
	}
	// RFC 6749, section 2.3.1: both are form-encoded before Basic.
	id, errID := url.QueryUnescape(id)
	secret, errSecret := url.QueryUnescape(secret)
	if errID != nil || errSecret != nil || len(id) > 64 || len(secret) > 128 {
		return nil, errOAuthInvalidClient
	}
	rs, err := models.AuthenticateClient(c.Request.Context(), oc.db, id, secret)
	if errors.Is(err, models.ErrInvalidCredentials) {
		oc.log.WarnContext(c.Request.Context(), "resource-server client authentication failed",
			"request_id", middlewares.RequestID(c), "ip", middlewares.ClientIP(c))
		return nil, errOAuthInvalidClient
	}
	return rs, err
}

// formToken reads the form's token: errOAuthInvalidRequest when the body
// is not a form or names none.
func formToken(c *gin.Context) (string, error) {
	mediaType, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		return "", errOAuthInvalidRequest
	}
	if err := c.Request.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", err
		}
		return "", errOAuthInvalidRequest
	}
	tokens := c.Request.PostForm["token"]
	if len(tokens) != 1 || tokens[0] == "" {
		return "", errOAuthInvalidRequest
	}
	return tokens[0], nil
}

// allow spends one request of key's budget in l; a refusal is the API's
// 429 with Retry-After, counted as a hit of limit. A limiter that cannot
// answer (Redis down) is 503, as for the login's limits.
func (oc *OAuthController) allow(c *gin.Context, l middlewares.RateLimiter, limit, key string) error {
	wait, err := l.Allow(c.Request.Context(), key)
	switch {
	case err != nil:
		return errors.Join(models.ErrUnavailable, err)
	case wait > 0:
		oc.metrics.RateLimitHit(limit)
		return apierror.RateLimited(wait)
	}
	return nil
}

// oauthAnswer renders what an OAuth handler returned: its RFC error, or
// any other error through apierror.
func oauthAnswer(c *gin.Context, err error) error {
	var oe *oauthError
	if errors.As(err, &oe) {
		writeOAuthError(c, oe)
		return nil
	}
	return err
}

// inactive is the whole answer about anything but a live token.
var inactive = gin.H{"active": false}

// Introspect tells an authenticated resource-server client whether a
// token is active, and whose it is (RFC 7662). It resolves the token as a
// request would (through the cache, recording its use), but does not
// apply a token's network restrictions: the caller's client is not the
// token holder.
func (oc *OAuthController) Introspect(c *gin.Context) error {
	outcome, err := oc.introspect(c)
	oc.metrics.Introspection(outcome)
	return oauthAnswer(c, err)
}

func (oc *OAuthController) introspect(c *gin.Context) (string, error) {
	rs, err := oc.client(c)
	switch {
	case errors.Is(err, errOAuthInvalidClient) || err == nil && rs == nil:
		return metrics.IntrospectInvalidClient, errOAuthInvalidClient
	case err != nil:
		return metrics.IntrospectError, err
	}
	if err := oc.allow(c, oc.perClient, "oauth-client", "introspect:"+rs.ClientID); err != nil {
		return metrics.IntrospectRateLimited, err
	}
	secret, err := formToken(c)
	if err != nil {
		return metrics.IntrospectBadRequest, err
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	// The caller is the resource server, not the token's holder, whose
	// address and user agent are not known here: none is given, and the
	// token's allowed networks are not applied (docs/GATEWAY.md).
	id, err := oc.resolver.Resolve(c.Request.Context(), auth.Request{Secret: secret, Now: oc.clock.Now(), HolderUnknown: true})
	switch {
	case auth.Refused(err):
		c.JSON(http.StatusOK, inactive)
		return metrics.IntrospectInactive, nil
	case err != nil:
		return metrics.IntrospectError, err
	}
	user := id.User()
	answer := gin.H{
		"active":     true,
		"scope":      strings.Join(id.Token.Scopes, " "),
		"username":   user.Username,
		"sub":        strconv.FormatUint(uint64(user.ID), 10),
		"iat":        id.Token.CreatedAt.Unix(),
		"jti":        strconv.FormatUint(uint64(id.Token.ID), 10),
		"token_type": "Bearer",
		"client_id":  rs.ClientID,
	}
	if id.ExpiresAt != nil {
		answer["exp"] = id.ExpiresAt.Unix()
	}
	c.JSON(http.StatusOK, answer)
	return metrics.IntrospectActive, nil
}

// Revoke revokes a token (RFC 7009): any token for an authenticated
// resource-server client, and, without client authentication, the token
// the caller holds (a public client signing out). The answer is 200
// whatever the string was, so it reveals nothing; a string that cannot be
// a token costs no database work.
func (oc *OAuthController) Revoke(c *gin.Context) error {
	return oauthAnswer(c, oc.revoke(c))
}

func (oc *OAuthController) revoke(c *gin.Context) error {
	rs, err := oc.client(c)
	if err != nil {
		return err
	}
	if rs != nil {
		err = oc.allow(c, oc.perClient, "oauth-client", "revoke:"+rs.ClientID)
	} else {
		err = oc.allow(c, oc.perIP, "ip", "oauth-revoke:"+middlewares.ClientNetwork(middlewares.ClientIP(c)))
	}
	if err != nil {
		return err
	}
	secret, err := formToken(c)
	if err != nil {
		return err
	}
	if models.WellFormedToken(secret) || models.LegacyTokenShape(secret) {
		if _, err := models.RevokeByHashes(requestContext(c), oc.db, []string{models.HashToken(secret)}, models.RevokedByOAuth); err != nil {
			return err
		}
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return nil
}

// Metadata answers the authorization server metadata (RFC 8414).
func (oc *OAuthController) Metadata(c *gin.Context) error {
	c.JSON(http.StatusOK, oc.metadata)
	return nil
}
