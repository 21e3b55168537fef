// Package routes builds the HTTP router: the one table of every route of
// tokenauth and the middleware each runs behind.
package routes

import (
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/controllers"
	"tokenauth/docs"
	"tokenauth/metrics"
	"tokenauth/middlewares"
	"tokenauth/models"
	"tokenauth/web"
)

// Deps is what the router needs; main builds it once, tests build one per
// test.
type Deps struct {
	DB        *gorm.DB
	Config    config.Config
	Logger    *slog.Logger
	Passwords *models.PasswordHasher
	Auth      *middlewares.Authenticator
	// Redis, when set, holds the login limits shared by every instance;
	// without it each process counts on its own. RedisPrefix starts its
	// keys ("tokenauth:" when empty).
	Redis       *redis.Client
	RedisPrefix string
	// Metrics collects the app's metrics (served at /metrics), the
	// refusals of the rate limits included. Nil gets a fresh one.
	Metrics *metrics.Metrics
}

// New returns the router with every route of the service.
func New(d Deps) *gin.Engine {
	if d.Metrics == nil {
		d.Metrics = metrics.New(d.Auth)
	}
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	// The client IP is the peer's, or the one X-Forwarded-For names when the
	// peer is a trusted proxy; no other header is believed.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(d.Config.TrustedProxies); err != nil {
		panic(err) // config.Load has validated them
	}
	r.Use(
		d.Metrics.Requests(),
		middlewares.RequestLog(d.Logger),
		middlewares.Recovery(d.Logger),
		middlewares.Errors(d.Logger),
		middlewares.Deadline(d.Config.RequestTimeout),
		middlewares.SecurityHeaders(),
		middlewares.CORS(d.Config.CORSAllowedOrigins),
		middlewares.RejectTokenInURL(),
		middlewares.LimitBody(d.Config.MaxBodyBytes),
	)
	r.NoRoute(middlewares.NotFound)
	r.NoMethod(middlewares.MethodNotAllowed)

	scopes := &models.ScopeCatalogue{}
	ipLimit, lockout := loginLimits(d.Config, d.Redis, d.RedisPrefix)
	ipLimit = d.Metrics.CountRateLimiter("ip", ipLimit)
	lockout = d.Metrics.CountLockout("username", lockout)
	health := controllers.NewHealthController(d.DB)
	docsc := controllers.NewDocsController(docs.OpenAPI())
	authc := controllers.NewAuthController(d.DB, d.Config, d.Passwords, d.Auth, lockout)
	profile := controllers.NewProfileController(d.DB, d.Config, d.Passwords, d.Auth, lockout)
	tokens := controllers.NewTokenController(d.DB, d.Config, d.Auth, scopes)
	events := controllers.NewEventController(d.DB)
	leaks := controllers.NewLeakController(d.DB, d.Auth)

	anyToken := middlewares.RequireAuth()
	fullScope := middlewares.RequireScope(models.ScopeAll)
	// The scopes a token may be limited to are exactly those the routes
	// below check: scope() records each in the catalogue that token
	// creation validates against, so a resource declares its scopes by
	// using them in its block.
	scope := func(name string) gin.HandlerFunc {
		scopes.Add(name)
		return middlewares.RequireScope(name)
	}

	get(r, "/healthz", health.Healthz)
	get(r, "/readyz", health.Readyz)
	get(r, "/metrics", gin.WrapH(d.Metrics.Handler())) // bind or protect in production

	public := r.Group("/api")
	get(public, "/openapi.yaml", docsc.OpenAPI)
	// CountLogins goes first, so that the limit's refusals count as
	// login outcomes too.
	post(public, "/login", d.Metrics.CountLogins, middlewares.LimitByClientIP(ipLimit, "login"), authc.Login)
	post(public, "/register", middlewares.LimitByClientIP(ipLimit, "register"), authc.Register)
	post(public, "/tokens/revoke-leaked", middlewares.LimitByClientIP(ipLimit, "revoke-leaked"), leaks.Revoke)

	api := r.Group("/api", d.Auth.Identify())
	post(api, "/logout", anyToken, authc.Logout)
	post(api, "/logout-all", fullScope, authc.LogoutAll)
	post(api, "/logout-others", fullScope, authc.LogoutOthers)

	get(api, "/profile", scope("profile:read"), profile.Show)
	patch(api, "/profile", scope("profile:write"), profile.Update)
	post(api, "/password", fullScope, profile.ChangePassword)

	get(api, "/tokens", fullScope, tokens.List)
	post(api, "/tokens", fullScope, tokens.Create)
	get(api, "/tokens/current", anyToken, tokens.Current)
	patch(api, "/tokens/:id", fullScope, tokens.Rename)
	post(api, "/tokens/:id/rotate", fullScope, tokens.Rotate)
	del(api, "/tokens/:id", fullScope, tokens.Revoke)

	get(api, "/security-events", fullScope, events.List)

	// Articles: the example resource, owned by its author (docs/EXTENDING.md).
	articles := controllers.NewArticleController(d.DB)
	get(api, "/articles", scope("articles:read"), articles.List)
	post(api, "/articles", scope("articles:write"), articles.Create)
	get(api, "/articles/:id", scope("articles:read"), articles.Show)
	patch(api, "/articles/:id", scope("articles:write"), articles.Update)
	del(api, "/articles/:id", scope("articles:write"), articles.Delete)

	// The token management page, a client of the API above. It comes last:
	// it offers the scopes that the routes above declared.
	page := web.New(d.Config, scopes.Names())
	r.GET("/", page.Index)
	r.GET("/static/:file", page.Asset)

	return r
}

// Every path answers with and without its trailing slash, without a
// redirect: clients differ in how they spell paths, and a redirect would
// drop the Authorization header in some of them.
func handle(r gin.IRoutes, method, path string, handlers ...gin.HandlerFunc) {
	r.Handle(method, path, handlers...)
	r.Handle(method, path+"/", handlers...)
}

func get(r gin.IRoutes, path string, h ...gin.HandlerFunc)   { handle(r, "GET", path, h...) }
func post(r gin.IRoutes, path string, h ...gin.HandlerFunc)  { handle(r, "POST", path, h...) }
func patch(r gin.IRoutes, path string, h ...gin.HandlerFunc) { handle(r, "PATCH", path, h...) }
func del(r gin.IRoutes, path string, h ...gin.HandlerFunc)   { handle(r, "DELETE", path, h...) }
