// Package docs holds the documentation that ships inside the binary: the
// OpenAPI description of every route, served at GET /api/openapi.yaml and
// enforced by the HTTP tests.
package docs

import _ "embed"

//go:embed openapi.yaml
var openAPI string

// OpenAPI returns docs/openapi.yaml.
func OpenAPI() []byte {
	return []byte(openAPI)
}
