package tests

import (
	"testing"

	"tokenauth/models"
)

// A login reads the user's live tokens and asks whether the client is
// known; both have indexes of their own, so that a login does not cost
// more as the user's revoked tokens and events pile up.
func TestLoginQueriesHaveTheirIndexes(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	for _, tc := range []struct {
		model any
		index string
	}{
		{&models.APIToken{}, "idx_api_tokens_user_live"},
		{&models.SecurityEvent{}, "idx_security_events_known_client"},
	} {
		if !s.DB.Migrator().HasIndex(tc.model, tc.index) {
			t.Errorf("no index %s after migration", tc.index)
		}
	}
}
