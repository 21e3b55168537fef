package tests

import (
	"net/http"
	"testing"
	"time"

	"tokenauth/config"
	"tokenauth/internal/testdb"
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

// securityEventBefore17 is the security_events table as it was before
// refused logins of unknown usernames were recorded: every event had a
// user.
type securityEventBefore17 struct {
	ID        uint   `gorm:"primaryKey"`
	UserID    uint   `gorm:"not null;index:idx_security_events_user_created,priority:1;index:idx_security_events_known_client,priority:1,where:type = 'login_succeeded'"`
	Type      string `gorm:"size:32;not null"`
	Reason    string `gorm:"size:32;not null;default:''"`
	TokenID   *uint
	IP        string    `gorm:"size:64;not null;default:'';index:idx_security_events_known_client,priority:2"`
	UserAgent string    `gorm:"size:512;not null;default:'';index:idx_security_events_known_client,priority:3"`
	NewClient bool      `gorm:"not null;default:false"`
	CreatedAt time.Time `gorm:"index:idx_security_events_user_created,priority:2;index;index:idx_security_events_known_client,priority:4"`
}

func (securityEventBefore17) TableName() string { return "security_events" }

// A database made before security events could lack a user is migrated:
// its events stay, and a refused login of an unknown username is recorded
// on it.
func TestMigrationLetsEventsHaveNoUser(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	old, err := config.OpenDatabase(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	if err := old.ORM.AutoMigrate(&models.User{}, &securityEventBefore17{}); err != nil {
		t.Fatal(err)
	}
	before := securityEventBefore17{UserID: 7, Type: models.EventLoginSucceeded, IP: "192.0.2.1", UserAgent: "old/1.0",
		CreatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	if err := old.ORM.Create(&before).Error; err != nil {
		t.Fatal(err)
	}
	noUser := "INSERT INTO security_events (user_id, type, created_at) VALUES (NULL, 'login_rate_limited', ?)"
	if err := old.ORM.Exec(noUser, time.Now()).Error; err == nil {
		t.Fatal("the old schema took an event without a user")
	}

	s := NewServer(t, withLimits(1, 15*time.Minute, 1000), WithConfig(func(c *config.Config) { c.DatabaseURL = url }))
	s.Do(t, login("ghost", "a guess")).ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	expectRateLimited(t, s.Do(t, login("ghost", "a guess")), 15*time.Minute)
	var events []models.SecurityEvent
	if err := s.DB.Order("id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("events after the migration: %+v, want the old one and the refusal", events)
	}
	if e := events[0]; e.UserID == nil || *e.UserID != 7 || e.IP != "192.0.2.1" || e.UserAgent != "old/1.0" || !e.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("the old event after the migration: %+v", e)
	}
	if e := events[1]; e.UserID != nil || e.Type != models.EventLoginRateLimited || e.UsernameDigest == "" {
		t.Errorf("the refusal: %+v, want no user and the name's digest", e)
	}
	for _, index := range []string{"idx_security_events_user_created", "idx_security_events_known_client", "idx_security_events_username"} {
		if !s.DB.Migrator().HasIndex(&models.SecurityEvent{}, index) {
			t.Errorf("no index %s after the migration", index)
		}
	}
}
