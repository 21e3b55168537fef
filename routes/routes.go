// Package routes builds the HTTP router: the one table of every route of
// tokenauth, who may call each, and the middleware it runs behind.
package routes

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/auth"
	"tokenauth/clock"
	"tokenauth/config"
	"tokenauth/controllers"
	"tokenauth/docs"
	"tokenauth/keyring"
	"tokenauth/mail"
	"tokenauth/metrics"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/password"
	"tokenauth/secretscanning"
	"tokenauth/web"
)

// Deps is what the router needs; the application (package app) builds it.
type Deps struct {
	DB        *gorm.DB
	Config    config.Config
	Clock     clock.Clock
	Logger    *slog.Logger
	Passwords *password.Hasher
	// Keyring makes the keys of the login lockout (and the digests of
	// the usernames it refuses).
	Keyring  *keyring.Keyring
	Resolver *auth.Resolver
	// Redis, when set, holds the login limits shared by every instance;
	// without it each process counts on its own. RedisPrefix starts its
	// keys ("tokenauth:" when empty).
	Redis       *redis.Client
	RedisPrefix string
	Metrics     *metrics.Metrics
	// Mail writes the mails of links (resets, verification, changes of
	// address) for the outbox.
	Mail *mail.Composer
	// OAuthClientPerMinute is each resource-server client's budget on the
	// OAuth routes (DefaultOAuthClientPerMinute when 0).
	OAuthClientPerMinute int
	// SecretScanning holds GitHub's secret-scanning keys; nil turns the
	// receiver off.
	SecretScanning *secretscanning.Keys
	// Resources are served under /api beside accounts and tokens
	// (Resources() for the service's own).
	Resources []Resource
}

// forwardAuthPath starts the paths of the forward-auth check.
const forwardAuthPath = "/api/auth/check"

// New returns the router with every route of the service. A route that
// does not say who may call it is an error.
func New(d Deps) (*gin.Engine, error) {
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	// The client IP is the peer's, or the one X-Forwarded-For names when the
	// peer is a trusted proxy; no other header is believed.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(d.Config.TrustedProxies); err != nil {
		return nil, err
	}
	r.Use(
		middlewares.Measure(d.Metrics),
		middlewares.RequestLog(d.Logger),
		middlewares.Recovery(d.Logger),
		middlewares.Errors(d.Logger),
		// Inside Errors, so that it reshapes a refusal before it is
		// rendered, and ahead of every middleware that may refuse.
		middlewares.ForwardAuthAnswer(forwardAuthPath, d.Metrics, d.Logger),
		middlewares.Deadline(d.Config.RequestTimeout),
		middlewares.SecurityHeaders(forwardAuthPath),
		middlewares.CORS(d.Config.CORSAllowedOrigins, forwardAuthPath),
		middlewares.RejectTokenInURL(),
		middlewares.LimitBody(d.Config.MaxBodyBytes),
	)
	r.NoRoute(middlewares.NotFound)
	r.NoMethod(middlewares.MethodNotAllowed)

	if d.Keyring == nil {
		return nil, errors.New("routes: no keyring (the login lockout's keys are made with it)")
	}
	var errs []error
	scopes := &models.ScopeCatalogue{}
	api := API{engine: r, identify: middlewares.Identify(d.Resolver, d.Clock),
		identifyForProxy: middlewares.IdentifyForProxy(d.Resolver, d.Clock), scopes: scopes, errs: &errs}
	ipLimit, loginCounter := loginLimits(d.Config, d.Redis, d.RedisPrefix, d.Metrics)
	lockout := controllers.NewLockout(loginCounter, d.Keyring, d.Metrics)
	limitIP := func(budget string) gin.HandlerFunc { return middlewares.LimitByClientIP(ipLimit, budget, d.Metrics) }

	health := controllers.NewHealthController(d.DB)
	handleBoth(r, "GET", "/healthz", apierror.Handle(health.Healthz))
	handleBoth(r, "GET", "/readyz", apierror.Handle(health.Readyz))

	authc := controllers.NewAuthController(d.DB, d.Config, d.Clock, d.Passwords, lockout, d.Mail, d.Keyring)
	// CountLogins goes first, so that the limit's refusals count as
	// login outcomes too.
	api.With(middlewares.CountLogins(d.Metrics), limitIP("login")).POST("/login", Public, authc.Login)
	// The second step of a login shares the login's budget per client IP,
	// and its wrong codes count in the username's lockout.
	api.With(middlewares.CountLogins(d.Metrics), limitIP("login")).POST("/login/mfa", Public, authc.LoginMFA)
	api.With(limitIP("register")).POST("/register", Public, authc.Register)
	api.POST("/logout", AnyToken, authc.Logout)
	api.POST("/logout-all", FullScope.Fresh(), authc.LogoutAll)
	api.POST("/logout-others", FullScope, authc.LogoutOthers)

	profile := controllers.NewProfileController(d.DB, d.Config, d.Passwords, lockout, d.Mail)
	api.GET("/profile", Scope("profile:read"), profile.Show)
	// Changing the address needs a fresh proof; the handler asks for it
	// only when the address changes (middlewares.RequireFreshAuth).
	api.PATCH("/profile", Scope("profile:write"), profile.Update)
	// The current password a change carries is itself the proof: no
	// fresh one is needed, and the change makes the token fresh.
	api.POST("/password", FullScope, profile.ChangePassword)
	// Re-authentication is a password check: the client IP's budget and
	// the username's lockout are the login's.
	reauth := controllers.NewReauthController(d.DB, d.Passwords, lockout, d.Keyring, d.Mail)
	api.With(middlewares.CountReauths(d.Metrics), limitIP("login")).POST("/reauth", FullScope, reauth.Reauth)

	// A reset request has the budget of a login per client IP: both let
	// anyone probe for accounts or cause work.
	email := controllers.NewEmailController(d.DB, d.Config, d.Passwords, lockout, d.Mail)
	api.With(limitIP("password-reset")).POST("/password-reset", Public, email.RequestReset)
	api.With(limitIP("password-reset-confirm")).POST("/password-reset/confirm", Public, email.ConfirmReset)
	api.POST("/email/verify", Scope("profile:write"), email.RequestVerification)
	api.With(limitIP("email-confirm")).POST("/email/verify/confirm", Public, email.ConfirmEmail)

	// Every change of the second factor needs a fresh proof.
	mfa := controllers.NewMFAController(d.DB, d.Keyring, d.Mail, d.Metrics)
	api.POST("/mfa/totp", FullScope.Fresh(), mfa.StartTOTP)
	api.POST("/mfa/totp/confirm", FullScope.Fresh(), mfa.ConfirmTOTP)
	api.DELETE("/mfa/totp", FullScope.Fresh(), mfa.DisableTOTP)
	api.POST("/mfa/recovery-codes", FullScope.Fresh(), mfa.RegenerateRecoveryCodes)

	tokens := controllers.NewTokenController(d.DB, d.Config, d.Clock, d.Resolver, scopes)
	api.GET("/tokens", FullScope, tokens.List)
	api.POST("/tokens", FullScope.Fresh(), tokens.Create)
	api.GET("/tokens/current", AnyToken, tokens.Current)
	api.POST("/tokens/current/rotate", AnyToken, tokens.RotateCurrent)
	api.PATCH("/tokens/:id", FullScope, tokens.Update)
	api.POST("/tokens/:id/rotate", FullScope.Fresh(), tokens.Rotate)
	api.DELETE("/tokens/:id", FullScope, tokens.Revoke)
	leaks := controllers.NewLeakController(d.DB)
	api.With(limitIP("revoke-leaked")).POST("/tokens/revoke-leaked", Public, leaks.Revoke)
	// Public to tokens: GitHub proves itself by signing the body.
	scanning := controllers.NewSecretScanningController(d.DB, d.SecretScanning, d.Metrics)
	api.POST("/github/secret-scanning", Public, scanning.Receive)

	events := controllers.NewEventController(d.DB)
	api.GET("/security-events", FullScope, events.List)

	for _, resource := range d.Resources {
		resource(api, d.DB)
	}

	// The services behind a proxy: the forward-auth check and the scopes
	// they check with it (docs/GATEWAY.md).
	for _, scope := range d.Config.ExtraScopes {
		scopes.Add(scope)
	}
	gateway := controllers.NewGatewayController()
	api.ForwardAuth(strings.TrimPrefix(forwardAuthPath, "/api"), AnyToken, gateway.Check)

	// Resource servers: introspection, revocation and the metadata naming
	// them, in their RFCs' formats, outside /api.
	oauth := controllers.NewOAuthController(d.DB, d.Config, d.Resolver, d.Clock, d.Metrics, d.Logger,
		oauthLimit(d.Redis, d.RedisPrefix, d.OAuthClientPerMinute), ipLimit)
	handleBoth(r, http.MethodPost, "/oauth/introspect", apierror.Handle(oauth.Introspect))
	handleBoth(r, http.MethodPost, "/oauth/revoke", apierror.Handle(oauth.Revoke))
	handleBoth(r, http.MethodGet, "/.well-known/oauth-authorization-server", apierror.Handle(oauth.Metadata))

	// The description of the API and the token management page come last:
	// they list the scopes that the routes above declared.
	docsc := controllers.NewDocsController(docs.OpenAPI(scopes.Names()))
	api.GET("/openapi.yaml", Public, docsc.OpenAPI)
	page := web.New(d.Config, scopes.Names())
	handle(r, http.MethodGet, "/", page.Index)
	// Where the links sent by mail lead: the same page, which reads the
	// token from the link's fragment.
	handleBoth(r, http.MethodGet, "/reset", page.Index)
	handleBoth(r, http.MethodGet, "/verify", page.Index)
	handle(r, http.MethodGet, "/static/:file", page.Asset)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}
