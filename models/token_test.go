package models

import (
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm/schema"
)

// FindTokenByHash selects its columns by hand: a column added to a model
// and forgotten there would leave that field empty on every authenticated
// request.
func TestFindTokenByHashReadsEveryColumn(t *testing.T) {
	for alias, model := range map[string]any{"t": &APIToken{}, "u": &User{}} {
		s, err := schema.Parse(model, &sync.Map{}, schema.NamingStrategy{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range s.Fields {
			if f.DBName == "" {
				continue // a relation or a field that is not stored
			}
			if !strings.Contains(tokenByHashSQL, alias+"."+f.DBName+",") && !strings.Contains(tokenByHashSQL, alias+"."+f.DBName+"\n") {
				t.Errorf("FindTokenByHash does not read %s.%s (%s.%s)", s.Table, f.DBName, s.Name, f.Name)
			}
		}
	}
}
