package routes

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/apierror"
	"tokenauth/middlewares"
	"tokenauth/models"
)

// Access says who may call a route under /api. Its zero value declares
// nothing, and registering a route with it fails when the router is built:
// a route is protected unless it is registered as Public on purpose, and a
// protected route names the scope it needs.
type Access struct {
	public   bool
	anyToken bool
	scope    string
	// fresh routes also need the token's holder to have proved the
	// password within REAUTH_MAX_AGE (see Fresh).
	fresh bool
}

var (
	// Public routes answer anyone; they identify nobody.
	Public = Access{public: true}
	// AnyToken routes answer any live token, whatever its scopes: a token
	// may always describe and revoke itself.
	AnyToken = Access{anyToken: true}
	// FullScope routes answer only a full-access token ("*"): managing
	// tokens and the account, so a leaked narrow token cannot mint a wider
	// one.
	FullScope = Scope(models.ScopeAll)
)

// Scope is the access of a route that a live token holding scope (or "*")
// may call. Using a scope in a route puts it in the catalogue that tokens
// may be limited to.
func Scope(name string) Access { return Access{scope: name} }

// Fresh is the access a, for a sensitive action: the token's holder must
// also have proved the password within REAUTH_MAX_AGE (step-up
// authentication, RFC 9470), else the answer is 401
// reauthentication_required and the client sends the password to POST
// /api/reauth/ before it tries again. For a route that needs the proof
// only for some requests (a change that loosens a token), the handler
// calls middlewares.RequireFreshAuth instead. A public route cannot be
// fresh: registering one fails.
func (a Access) Fresh() Access {
	a.fresh = true
	return a
}

// Resource adds the routes of one resource to the API, with the database
// its handlers use: the extension point of docs/EXTENDING.md.
type Resource func(api API, db *gorm.DB)

// API registers the routes under /api. Every path answers with and without
// its trailing slash, without a redirect: clients differ in how they spell
// paths, and a redirect would drop the Authorization header in some of
// them.
type API struct {
	engine   *gin.Engine
	identify gin.HandlerFunc
	// identifyForProxy identifies on the forward-auth routes, whose
	// answers a proxy reads (middlewares.IdentifyForProxy).
	identifyForProxy gin.HandlerFunc
	scopes           *models.ScopeCatalogue
	errs             *[]error
	// before runs ahead of the handler of every route registered through
	// this API (see With).
	before []gin.HandlerFunc
}

// With returns the API with middleware that runs ahead of the handlers of
// the routes registered through it (after authentication, for a protected
// route).
func (a API) With(mw ...gin.HandlerFunc) API {
	a.before = append(slices.Clip(a.before), mw...)
	return a
}

// GET registers a GET route; it answers HEAD as well (see handle).
func (a API) GET(path string, access Access, h apierror.HandlerFunc) {
	a.handle("GET", path, access, h)
}

// POST registers a POST route.
func (a API) POST(path string, access Access, h apierror.HandlerFunc) {
	a.handle("POST", path, access, h)
}

// PATCH registers a PATCH route.
func (a API) PATCH(path string, access Access, h apierror.HandlerFunc) {
	a.handle("PATCH", path, access, h)
}

// DELETE registers a DELETE route.
func (a API) DELETE(path string, access Access, h apierror.HandlerFunc) {
	a.handle("DELETE", path, access, h)
}

func (a API) handle(method, path string, access Access, h apierror.HandlerFunc) {
	if chain, ok := a.chain(method, path, access, h); ok {
		handleBoth(a.engine, method, "/api"+path, chain...)
	}
}

// chain returns the handlers of a route: authentication as access says,
// the API's middleware, then h. A route without access is recorded as an
// error.
func (a API) chain(method, path string, access Access, h apierror.HandlerFunc) ([]gin.HandlerFunc, bool) {
	var chain []gin.HandlerFunc
	switch {
	case access.public && access.fresh:
		*a.errs = append(*a.errs, fmt.Errorf("%s /api%s: a public route identifies nobody, so it cannot need a fresh proof", method, path))
		return nil, false
	case access.public:
	case access.anyToken:
		chain = append(chain, a.identify, middlewares.RequireAuth())
	case access.scope != "":
		a.scopes.Add(access.scope)
		chain = append(chain, a.identify, middlewares.RequireScope(access.scope))
	default:
		*a.errs = append(*a.errs, fmt.Errorf("%s /api%s: a route must declare who may call it: "+
			"routes.Scope(...), routes.AnyToken, routes.FullScope, or routes.Public", method, path))
		return nil, false
	}
	if access.fresh {
		chain = append(chain, middlewares.RequireFresh())
	}
	return append(append(chain, a.before...), apierror.Handle(h)), true
}

// forwardAuthMethods are the methods a forward-auth route answers: a proxy
// asks with the method of the request it checks (Envoy, Traefik), or
// always with one (nginx's auth_request subrequest). CONNECT names no path
// to check.
var forwardAuthMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodTrace}

// ForwardAuth registers a forward-auth route (docs/GATEWAY.md) on path and
// on every path below it, as Envoy's ext_authz appends the path it checks,
// for every method in forwardAuthMethods (HEAD beside GET). Its answers
// are shaped for a proxy by middlewares.ForwardAuthAnswer, which the
// router runs ahead of everything that may refuse a request.
func (a API) ForwardAuth(path string, access Access, h apierror.HandlerFunc) {
	a.identify = a.identifyForProxy
	for _, method := range forwardAuthMethods {
		chain, ok := a.chain(method, path, access, h)
		if !ok {
			return
		}
		// "/api/auth/check/" is matched by the catch-all, so the path
		// answers with and without its slash like every other.
		handle(a.engine, method, "/api"+path, chain...)
		handle(a.engine, method, "/api"+path+"/*path", chain...)
	}
}

// handleBoth registers the path with and without its trailing slash.
func handleBoth(r gin.IRoutes, method, path string, handlers ...gin.HandlerFunc) {
	handle(r, method, path, handlers...)
	handle(r, method, path+"/", handlers...)
}

// handle registers the route, and HEAD beside every GET: HTTP defines HEAD
// as GET without the body (RFC 9110, section 9.3.2), and clients and
// proxies use it to check a resource. The same handlers serve it: net/http
// drops the body of a HEAD response and keeps its status and headers,
// Content-Length included. Gin then lists HEAD in a 405's Allow header too.
func handle(r gin.IRoutes, method, path string, handlers ...gin.HandlerFunc) {
	r.Handle(method, path, handlers...)
	if method == http.MethodGet {
		r.Handle(http.MethodHead, path, handlers...)
	}
}
