// Package web serves the token management page: plain HTML, CSS and
// JavaScript embedded in the binary, with no build step and no third-party
// code. The page is a client of the public REST API like any other; it
// holds no privilege the API does not grant to every client.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/gin-gonic/gin"

	"tokenauth/apierror"
	"tokenauth/config"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is the policy of the page. Scripts and styles come
// only from the service itself, never inline; images from the service and
// from data: URLs (the QR code of a two-factor secret, which the API
// answers as one, so that the secret never travels in an image URL); the page talks
// only to its own origin; no form may submit anywhere by itself (the
// script sends them as JSON, so a password never lands in a URL); and
// Trusted Types forbid HTML sinks such as innerHTML, so text from the API
// can only ever be text. It replaces the API's "default-src 'none'", which
// would not let the page load its own script.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// file is one response of the page, ready to serve.
type file struct {
	name string
	body []byte
	etag string
}

func newFile(name string, body []byte) file {
	sum := sha256.Sum256(body)
	return file{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// Page serves the page and its assets from memory.
type Page struct {
	index  file
	assets map[string]file
}

// pageSettings are the values of the service that the page shows as hints,
// filled in once when the page is built.
type pageSettings struct {
	Scopes            []string
	DefaultLifetime   string
	MaxDays           int
	PasswordMinLength int
	// Registration says whether the page offers to create an account
	// (ALLOW_REGISTRATION) or tells who can.
	Registration  bool
	ResetLifetime string
}

// New renders the page for the service's settings and the scopes a token
// may be limited to (the routes' catalogue, so a resource that adds scopes
// needs no change here).
// It panics if the embedded template is broken, which the tests rule out.
func New(cfg config.Config, scopes []string) *Page {
	tmpl := template.Must(template.ParseFS(static, "static/index.html"))
	var index bytes.Buffer
	err := tmpl.Execute(&index, pageSettings{
		Scopes:            scopes,
		DefaultLifetime:   lifetime(cfg.TokenTTL),
		MaxDays:           int(cfg.TokenMaxTTL / (24 * time.Hour)),
		PasswordMinLength: cfg.PasswordMinLength,
		Registration:      cfg.AllowRegistration,
		ResetLifetime:     lifetime(cfg.PasswordResetTTL),
	})
	if err != nil {
		panic(fmt.Sprintf("web: rendering index.html: %v", err))
	}
	p := &Page{index: newFile("index.html", index.Bytes()), assets: map[string]file{}}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic(fmt.Sprintf("web: reading the embedded files: %v", err))
	}
	for _, e := range entries {
		if e.Name() == "index.html" {
			continue
		}
		body, err := fs.ReadFile(static, path.Join("static", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("web: reading %s: %v", e.Name(), err))
		}
		p.assets[e.Name()] = newFile(e.Name(), body)
	}
	return p
}

// lifetime says a duration the way the page's hint reads it.
func lifetime(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	case d == time.Hour:
		return "1 hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}

// Index serves the page.
func (p *Page) Index(c *gin.Context) { serve(c, p.index) }

// Asset serves a script, style sheet or icon of the page; anything else is
// the JSON 404 of the API.
func (p *Page) Asset(c *gin.Context) {
	f, ok := p.assets[c.Param("file")]
	if !ok {
		apierror.Abort(c, apierror.ErrNotFound)
		return
	}
	serve(c, f)
}

// serve answers with f and the page's headers. The files change only with
// the binary, so browsers revalidate by ETag (a 304 costs no body) rather
// than keep a stale script after an upgrade.
func serve(c *gin.Context, f file) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(c.Writer, c.Request, f.name, time.Time{}, bytes.NewReader(f.body))
}
