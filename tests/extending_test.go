package tests

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"gorm.io/gorm"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/internal/testdb"
	"tokenauth/routes"
)

// widgets is a throwaway resource, added the way docs/EXTENDING.md says: a
// routes.Resource whose routes declare their scopes, and its entries in
// docs/openapi.yaml's paths (widgetPaths). Nothing else is edited for it.
func widgets(api routes.API, _ *gorm.DB) {
	var mu sync.Mutex
	names := []string{}
	api.GET("/widgets", routes.Scope("widgets:read"), func(c *gin.Context) error {
		mu.Lock()
		defer mu.Unlock()
		c.JSON(http.StatusOK, gin.H{"widgets": slices.Clone(names)})
		return nil
	})
	api.POST("/widgets", routes.Scope("widgets:write"), func(c *gin.Context) error {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, "widget")
		c.JSON(http.StatusCreated, gin.H{"widgets": slices.Clone(names)})
		return nil
	})
}

const widgetPaths = `  /api/widgets/:
    get:
      tags: [widgets]
      operationId: listWidgets
      summary: Every widget.
      security: [{ bearerAuth: [] }]
      x-required-scope: widgets:read
      responses:
        "200":
          description: Every widget.
          headers:
            Token-Expires-At: { $ref: "#/components/headers/TokenExpiresAt" }
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [widgets]
                properties:
                  widgets: { type: array, items: { type: string } }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/InsufficientScope" }
    post:
      tags: [widgets]
      operationId: createWidget
      summary: Make a widget.
      security: [{ bearerAuth: [] }]
      x-required-scope: widgets:write
      responses:
        "201":
          description: Every widget.
          headers:
            Token-Expires-At: { $ref: "#/components/headers/TokenExpiresAt" }
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [widgets]
                properties:
                  widgets: { type: array, items: { type: string } }
        "401": { $ref: "#/components/responses/Unauthorized" }
        "403": { $ref: "#/components/responses/InsufficientScope" }
`

// A resource added through the extension point is picked up everywhere
// with no other edit: the scope catalogue that tokens are created against,
// the scope checks of its routes, the spec coverage, the scopes the served
// spec lists, and the page's scope list.
func TestAResourceNeedsNoEditOutsideItsOwn(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithResource(widgets, widgetPaths),
		WithConfig(func(c *config.Config) { c.MaxTokensPerUser = 10000 }))
	if scopes := s.scopes(t); !slices.Contains(scopes, "widgets:read") || !slices.Contains(scopes, "widgets:write") {
		t.Fatalf("the contract's scopes %v lack the resource's", scopes)
	}
	t.Run("every route is in the spec", func(t *testing.T) { checkEveryRouteIsInTheSpec(t, s) })
	t.Run("the spec's scopes are the routes'", func(t *testing.T) { checkSpecScopesMatchTheRoutes(t, s) })
	t.Run("tokens may hold the scopes", func(t *testing.T) { checkScopeCatalogue(t, s) })
	t.Run("the page offers the scopes", func(t *testing.T) { checkPageOffersTheScopes(t, s) })
	t.Run("the served spec lists the scopes", func(t *testing.T) {
		spec := string(s.Do(t, Request{Path: "/api/openapi.yaml"}).Expect(t, http.StatusOK).Body)
		if !strings.Contains(spec, `"widgets:read", "widgets:write"`) {
			t.Error("the served spec's Scope enum lacks the resource's scopes")
		}
	})
	t.Run("a narrow token uses it", func(t *testing.T) {
		user := s.CreateUser(t, "widgeteer", testPassword)
		reader, writer := s.IssueToken(t, user, "widgets:read"), s.IssueToken(t, user, "widgets:write")
		count := func() int {
			body := s.Do(t, Request{Path: "/api/widgets/", Token: reader}).Expect(t, http.StatusOK).JSON(t)
			got, _ := body["widgets"].([]any)
			return len(got)
		}
		before := count()
		s.Do(t, Request{Method: "POST", Path: "/api/widgets/", Token: writer}).Expect(t, http.StatusCreated)
		s.Do(t, Request{Path: "/api/widgets/", Token: writer}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
		s.Do(t, Request{Method: "POST", Path: "/api/widgets/", Token: reader}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
		if after := count(); after != before+1 {
			t.Errorf("widgets: %d before and %d after one was made", before, after)
		}
	})
}

// A route under /api is protected unless registered as public on purpose:
// one that declares neither a scope nor Public stops the router from being
// built, rather than serving without authentication.
func TestARouteThatDeclaresNoAccessIsRefusedAtBuild(t *testing.T) {
	t.Parallel()
	forgetful := func(api routes.API, _ *gorm.DB) {
		api.GET("/forgotten", routes.Access{}, func(c *gin.Context) error { return nil })
		api.DELETE("/empty-scope", routes.Scope(""), func(c *gin.Context) error { return nil })
	}
	err := buildApp(t, forgetful)
	if err == nil {
		t.Fatal("the app was built with routes that declare no access")
	}
	for _, want := range []string{"GET /api/forgotten", "DELETE /api/empty-scope"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not name %s", err, want)
		}
	}
}

// buildApp builds the service with one more resource, on a fresh database,
// and returns what app.New said.
func buildApp(t *testing.T, resource routes.Resource) error {
	t.Helper()
	cfg := config.Default()
	cfg.DatabaseURL = testdb.URL(t)
	database, err := config.OpenDatabase(cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { database.Close() })
	if err := config.Migrate(database.ORM); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, database, slog.New(slog.DiscardHandler), app.WithResources(resource))
	if err == nil {
		a.Shutdown()
	}
	return err
}

// A public route identifies nobody, so it cannot need a fresh proof of
// the password: asking for one stops the build.
func TestAPublicRouteCannotBeFresh(t *testing.T) {
	t.Parallel()
	err := buildApp(t, func(api routes.API, _ *gorm.DB) {
		api.POST("/open-but-fresh", routes.Public.Fresh(), func(c *gin.Context) error { return nil })
	})
	if err == nil || !strings.Contains(err.Error(), "POST /api/open-but-fresh") {
		t.Fatalf("got %v, want an error naming POST /api/open-but-fresh", err)
	}
}
