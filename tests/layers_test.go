package tests

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers ranks the packages of the service: a package imports only
// packages of a lower rank, so no import runs from a lower layer to a
// higher one and no two packages import each other. Leaves (rank 0) import
// nothing of the service.
var layers = map[string]int{
	".":            10, // main: hands the arguments to cli
	"cli":          9,
	"app":          8, // the composition root
	"routes":       7,
	"controllers":  6,
	"web":          6,
	"middlewares":  5,
	"apierror":     4,
	"auth":         3,
	"djangoimport": 3,
	"mail":         3,
	"webhooks":     3,
	"expiry":       4,
	"config":       2,
	"keyring":      2,
	"outbox":       2,
	"models":       1,
	"ratelimit":    0,
	"password":     0,
	"secondfactor": 0,
	"clock":        0,
	"metrics":      0,
	"docs":         0,
	// GitHub's keys and signatures, and the documented webhook verifier,
	// which receivers copy: neither knows the rest of the service.
	"secretscanning":    0,
	"webhooks/verifier": 0,
}

// banned are imports a package must not have beside the ranks: the
// domain knows no HTTP framework, the middlewares no database driver or
// cache, the resolver no HTTP framework.
var banned = map[string][]string{
	"models":         {"github.com/gin-gonic/", "net/http"},
	"mail":           {"github.com/gin-gonic/", "net/http"},
	"outbox":         {"github.com/gin-gonic/", "net/http"},
	"webhooks":       {"github.com/gin-gonic/"},
	"expiry":         {"github.com/gin-gonic/", "net/http"},
	"secretscanning": {"github.com/gin-gonic/", "gorm.io/"},
	"auth":           {"github.com/gin-gonic/", "net/http"},
	"middlewares":    {"github.com/jackc/pgx", "github.com/hashicorp/golang-lru", "gorm.io/"},
	"metrics":        {"github.com/gin-gonic/"},
	// The second factor is computing only: it stores nothing and serves
	// nothing.
	"secondfactor": {"github.com/gin-gonic/", "net/http", "gorm.io/"},
}

func TestNoImportRunsUpTheLayers(t *testing.T) {
	t.Parallel()
	root := ".."
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "tests" || name == "bench" || name == "internal") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		rank, ranked := layers[pkg]
		if !ranked {
			t.Errorf("package %q has no place in the layers: add it to the table", pkg)
			return nil
		}
		seen[pkg] = true
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range file.Imports {
			imported, _ := strconv.Unquote(spec.Path.Value)
			for _, prefix := range banned[pkg] {
				if strings.HasPrefix(imported, prefix) {
					t.Errorf("%s imports %s", path, imported)
				}
			}
			own, ok := strings.CutPrefix(imported, "tokenauth/")
			if !ok {
				continue
			}
			if r, ok := layers[own]; ok && r >= rank {
				t.Errorf("%s (rank %d) imports tokenauth/%s (rank %d): an import up the layers", path, rank, own, r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range layers {
		if !seen[pkg] {
			t.Errorf("the layers name %q, which has no Go files", pkg)
		}
	}
}
