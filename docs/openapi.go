// Package docs holds the documentation that ships inside the binary: the
// OpenAPI description of every route, served at GET /api/openapi.yaml and
// enforced by the HTTP tests.
package docs

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:embed openapi.yaml
var openAPI string

// scopeEnumPrefix starts the line of docs/openapi.yaml that lists the
// scopes a token may hold (components.schemas.Scope).
const scopeEnumPrefix = "      enum: [\"*\", "

// OpenAPI returns docs/openapi.yaml with the scopes a token may hold
// listed as the service serves them: "*" and scopes, the catalogue the
// routes build. The file itself lists the service's own; a resource added
// to the service, or a scope of a service behind a proxy, is listed
// without an edit there.
func OpenAPI(scopes []string) []byte {
	quoted := make([]string, 0, len(scopes)+1)
	quoted = append(quoted, strconv.Quote("*"))
	for _, s := range scopes {
		quoted = append(quoted, strconv.Quote(s))
	}
	var out strings.Builder
	for line := range strings.Lines(openAPI) {
		if strings.HasPrefix(line, scopeEnumPrefix) {
			line = "      enum: [" + strings.Join(quoted, ", ") + "]\n"
		}
		out.WriteString(line)
	}
	return []byte(out.String())
}
