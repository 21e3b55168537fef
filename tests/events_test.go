package tests

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"tokenauth/app"
	"tokenauth/models"
)

// eventJSON is a security event as the API renders it.
type eventJSON struct {
	ID        uint      `json:"id"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	TokenID   *uint     `json:"token_id"`
	NewClient bool      `json:"new_client"`
}

// eventLog reads a user's events straight from the database, oldest first,
// as "type" or "type/reason".
func eventLog(t *testing.T, s *Server, userID uint) []string {
	t.Helper()
	var events []models.SecurityEvent
	if err := s.DB.Where("user_id = ?", userID).Order("id").Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
		if e.Reason != "" {
			out[i] += "/" + e.Reason
		}
	}
	return out
}

func TestEachActionLeavesItsEvent(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.MaxTokensPerUser = 3 }))
	u := s.CreateUser(t, "alice", testPassword)
	var login string
	var created tokenJSON

	steps := []struct {
		name string
		do   func(t *testing.T)
		want []string
	}{
		{"login", func(t *testing.T) { login = s.Login(t, "alice", testPassword) }, []string{"login_succeeded"}},
		{"wrong password", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "wrong"}}).
				ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		}, []string{"login_failed/wrong_password"}},
		{"create", func(t *testing.T) { created = createToken(t, s, login, map[string]any{"name": "ci"}) }, []string{"token_created"}},
		{"rename", func(t *testing.T) {
			s.Do(t, Request{Method: "PATCH", Path: fmt.Sprintf("/api/tokens/%d/", created.ID), Token: login, Body: map[string]string{"name": "ci2"}}).Expect(t, 200)
		}, []string{"token_renamed"}},
		{"rotate", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: fmt.Sprintf("/api/tokens/%d/rotate/", created.ID), Token: login}).Expect(t, 201).Decode(t, &created)
		}, []string{"token_rotated"}},
		{"revoke", func(t *testing.T) {
			s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/tokens/%d/", created.ID), Token: login}).Expect(t, 204)
		}, []string{"token_revoked/user"}},
		{"refused creation", func(t *testing.T) {
			s.Login(t, "alice", testPassword)
			s.Login(t, "alice", testPassword)
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login, Body: map[string]string{"name": "x"}}).ExpectError(t, 409, "token_limit_reached")
		}, []string{"login_succeeded", "login_succeeded"}},
		{"login beyond the limit", func(t *testing.T) { s.Login(t, "alice", testPassword) }, []string{"token_revoked/limit", "login_succeeded"}},
		{"logout", func(t *testing.T) {
			other := s.Login(t, "alice", testPassword)
			s.Do(t, Request{Method: "POST", Path: "/api/logout/", Token: other}).Expect(t, 204)
		}, []string{"token_revoked/limit", "login_succeeded", "token_revoked/logout"}},
		{"password change", func(t *testing.T) {
			login = s.Login(t, "alice", testPassword)
			s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: login,
				Body: map[string]string{"current_password": testPassword, "new_password": "a brand new passphrase"}}).Expect(t, 204)
		}, []string{"login_succeeded", "password_changed", "token_revoked/password_change", "token_revoked/password_change"}},
		{"refused password change", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: "/api/password/", Token: login,
				Body: map[string]string{"current_password": "wrong", "new_password": "another new passphrase"}}).ExpectError(t, 400, "validation_failed")
		}, nil},
		{"leak report", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: map[string]any{"tokens": []string{login}}}).Expect(t, 202)
		}, []string{"token_revoked/leak_report"}},
		{"deactivation", func(t *testing.T) {
			if err := models.SetActive(t.Context(), s.DB, u, false); err != nil {
				t.Fatal(err)
			}
		}, []string{"account_deactivated"}},
		{"login of a deactivated account", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": "a brand new passphrase"}}).
				ExpectError(t, http.StatusUnauthorized, "account_disabled")
		}, []string{"login_failed/account_disabled"}},
		{"reactivation", func(t *testing.T) {
			if err := models.SetActive(t.Context(), s.DB, u, true); err != nil {
				t.Fatal(err)
			}
		}, []string{"account_activated"}},
		{"the owner reads the activation", func(t *testing.T) {
			login = s.Login(t, "alice", "a brand new passphrase")
			var page struct{ Events []eventJSON }
			s.Do(t, Request{Path: "/api/security-events/?page_size=3", Token: login}).Expect(t, http.StatusOK).Decode(t, &page)
			if len(page.Events) < 2 || page.Events[1].Type != "account_activated" {
				t.Fatalf("the newest events: %+v, want a login after account_activated", page.Events)
			}
		}, []string{"login_succeeded"}},
		{"unknown user", func(t *testing.T) {
			s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "nobody", "password": "x"}}).
				ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		}, nil},
	}
	before := 0
	for _, step := range steps {
		step.do(t)
		log := eventLog(t, s, u.ID)
		got := log[before:]
		if strings.Join(got, " ") != strings.Join(step.want, " ") {
			t.Fatalf("%s: new events %v, want %v", step.name, got, step.want)
		}
		before = len(log)
	}
	var strays int64
	s.DB.Model(&models.SecurityEvent{}).Where("user_id <> ?", u.ID).Count(&strays)
	if strays != 0 {
		t.Errorf("events for other users: %d", strays)
	}
}

func TestFailedTransactionLeavesNoEvent(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithConfig(func(c *cfgT) { c.MaxTokensPerUser = 1 }))
	u, first := s.UserWithToken(t, "alice")
	before := eventLog(t, s, u.ID)

	// Make the insert of the new token fail, after the login has revoked
	// the oldest token to make room and recorded that.
	var failing atomic.Bool
	failing.Store(true)
	if err := s.DB.Callback().Create().Before("gorm:create").Register("test:fail_tokens", func(tx *gorm.DB) {
		if failing.Load() && tx.Statement.Table == "api_tokens" {
			tx.AddError(errors.New("injected failure"))
		}
	}); err != nil {
		t.Fatal(err)
	}
	resp := s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": "alice", "password": testPassword}})
	resp.ExpectError(t, http.StatusInternalServerError, "internal_error")
	if strings.Contains(string(resp.Body), "injected") {
		t.Errorf("the internal error leaked: %s", resp.Body)
	}
	failing.Store(false)

	if after := eventLog(t, s, u.ID); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("events after a failed login: %v, want %v", after, before)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: first}).Expect(t, http.StatusOK) // not evicted
}

func TestSecurityEventsList(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	s.CreateUser(t, "alice", testPassword)
	first := s.Do(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"User-Agent": "phone/1.0"},
		Body: map[string]string{"username": "alice", "password": testPassword}}).Expect(t, 200).JSON(t)
	second := s.Do(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"User-Agent": "phone/1.0"},
		Body: map[string]string{"username": "alice", "password": testPassword}}).Expect(t, 200).JSON(t)
	third := s.Do(t, Request{Method: "POST", Path: "/api/login/", Header: map[string]string{"User-Agent": "laptop/2.0"},
		Body: map[string]string{"username": "alice", "password": testPassword}}).Expect(t, 200).JSON(t)
	if first["new_client"] != true || second["new_client"] != false || third["new_client"] != true {
		t.Errorf("new_client: first %v, second %v, third %v; want true, false, true", first["new_client"], second["new_client"], third["new_client"])
	}
	token := third["token"].(string)
	_, bob := s.UserWithToken(t, "bob")
	s.Do(t, Request{Method: "POST", Path: "/api/logout-others/", Token: bob}).Expect(t, 204)

	var page struct {
		Events   []eventJSON `json:"events"`
		Page     int         `json:"page"`
		PageSize int         `json:"page_size"`
		Total    int         `json:"total"`
		NextPage *int        `json:"next_page"`
	}
	resp := s.Do(t, Request{Path: "/api/security-events/?page_size=2", Token: token}).Expect(t, 200)
	resp.Decode(t, &page)
	if page.Total != 3 || len(page.Events) != 2 || page.NextPage == nil || *page.NextPage != 2 || page.PageSize != 2 {
		t.Fatalf("first page: %+v", page)
	}
	newest := page.Events[0]
	if newest.Type != "login_succeeded" || newest.UserAgent != "laptop/2.0" || newest.IP != "127.0.0.1" || !newest.NewClient || newest.TokenID == nil {
		t.Errorf("newest event: %+v", newest)
	}
	for _, secret := range []string{token, first["token"].(string), bob, testPassword, models.HashToken(token), "argon2id"} {
		if strings.Contains(string(resp.Body), secret) {
			t.Errorf("the events list contains a secret")
		}
	}
	page.NextPage = nil
	s.Do(t, Request{Path: "/api/security-events/?page=2&page_size=2", Token: token}).Expect(t, 200).Decode(t, &page)
	if len(page.Events) != 1 || page.NextPage != nil || page.Events[0].UserAgent != "phone/1.0" {
		t.Errorf("last page: %+v", page)
	}
	s.Do(t, Request{Path: "/api/security-events/?page=9", Token: token}).Expect(t, 200).Decode(t, &page)
	if len(page.Events) != 0 || page.Total != 3 {
		t.Errorf("page past the end: %+v", page)
	}
	for _, query := range []string{"page=0", "page=-1", "page=x", "page_size=0", "page_size=101", "page_size=1e3"} {
		s.Do(t, Request{Path: "/api/security-events/?" + query, Token: token}).ExpectError(t, 400, "validation_failed")
	}
}

func TestRevokeLeakedTokens(t *testing.T) {
	t.Parallel()
	// Count every statement the service runs for one request (the
	// background workers run their own at any time). The callbacks go in
	// before the app starts: registering them later races with those
	// workers.
	var statements atomic.Int64
	count := func(tx *gorm.DB) {
		if tx.Statement.Context.Value(http.LocalAddrContextKey) != nil {
			statements.Add(1)
		}
	}
	s := NewServer(t, withBeforeStart(func(a *app.App) {
		cb := a.DB.Callback()
		for _, err := range []error{
			cb.Query().Before("gorm:query").Register("test:count", count),
			cb.Create().Before("gorm:create").Register("test:count", count),
			cb.Update().Before("gorm:update").Register("test:count", count),
			cb.Delete().Before("gorm:delete").Register("test:count", count),
			cb.Row().Before("gorm:row").Register("test:count", count),
			cb.Raw().Before("gorm:raw").Register("test:count", count),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}))
	_, token := s.UserWithToken(t, "alice")
	_, unrelated := s.UserWithToken(t, "bob")
	s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, 200) // cached
	fake := mustIssueUnknownLookingToken(t)
	badChecksum := token[:len(token)-1] + string(token[len(token)-1]^1)

	report := func(tokens ...string) *Response {
		return s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: map[string]any{"tokens": tokens}})
	}
	statements.Store(0)
	junk := report(badChecksum, "not a token", "", strings.Repeat("z", 512), "tka_"+strings.Repeat("0", 49)).Expect(t, http.StatusAccepted)
	if n := statements.Load(); n != 0 {
		t.Errorf("strings with a bad checksum cost %d statements, want 0", n)
	}
	fakeResp := report(fake).Expect(t, http.StatusAccepted)
	realResp := report(token).Expect(t, http.StatusAccepted)
	if string(fakeResp.Body) != string(realResp.Body) || string(fakeResp.Body) != `{"received":1}` {
		t.Errorf("answers differ or are wrong: fake %s, real %s", fakeResp.Body, realResp.Body)
	}
	if got := junk.JSON(t)["received"]; got != float64(5) {
		t.Errorf("received: got %v, want 5", got)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: token}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: unrelated}).Expect(t, http.StatusOK)
	// Reporting it again changes nothing and answers the same.
	if again := report(token).Expect(t, http.StatusAccepted); string(again.Body) != `{"received":1}` {
		t.Errorf("second report: %s", again.Body)
	}

	tooMany := make([]string, 101)
	for i := range tooMany {
		tooMany[i] = fake
	}
	Field(t, report(tooMany...).ExpectError(t, 400, "validation_failed"), "tokens")
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: `{"tokens": "tka_x"}`}).ExpectError(t, 400, "validation_failed")
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: `{}`}).ExpectError(t, 400, "validation_failed")
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/", Body: `tokens`}).ExpectError(t, 400, "invalid_json")
}

func TestPruneEvents(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	u, _ := s.UserWithToken(t, "alice")
	s.Login(t, "alice", testPassword)
	exec(t, s, "UPDATE security_events SET created_at = ? WHERE id = (SELECT MIN(id) FROM security_events)", time.Now().UTC().Add(-s.Config.SecurityEventRetention-time.Hour))
	n, err := models.PruneEvents(t.Context(), s.DB, time.Now().Add(-s.Config.SecurityEventRetention))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("pruned: got %d, want 1", n)
	}
	if log := eventLog(t, s, u.ID); len(log) != 1 {
		t.Errorf("events left: %v", log)
	}
}

// A long history is counted up to models.MaxCountedEvents: the total says
// so (total_capped), and next_page still follows the events themselves,
// up to the last page.
func TestSecurityEventsCountStopsAtTheCap(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	user, token := s.UserWithToken(t, "alice") // one event: the login
	events := make([]models.SecurityEvent, models.MaxCountedEvents+4)
	start := time.Now().Add(-time.Hour)
	for i := range events {
		events[i] = models.SecurityEvent{UserID: &user.ID, Type: models.EventLoginFailed, Reason: "wrong_password",
			CreatedAt: start.Add(-time.Duration(i) * time.Second)}
	}
	if err := s.DB.CreateInBatches(events, 500).Error; err != nil {
		t.Fatal(err)
	}
	type page struct {
		Events      []eventJSON `json:"events"`
		Total       int         `json:"total"`
		TotalCapped *bool       `json:"total_capped"`
		NextPage    *int        `json:"next_page"`
	}
	var first page
	s.Do(t, Request{Path: "/api/security-events/?page_size=100", Token: token}).Expect(t, 200).Decode(t, &first)
	if first.Total != models.MaxCountedEvents || first.TotalCapped == nil || !*first.TotalCapped ||
		first.NextPage == nil || *first.NextPage != 2 || len(first.Events) != 100 || first.Events[0].Type != "login_succeeded" {
		t.Fatalf("first page of %d events: total %d, capped %v, next %v, %d events; want the cap, capped, next 2, 100 events from the login",
			len(events)+1, first.Total, first.TotalCapped, first.NextPage, len(first.Events))
	}
	// Past the cap, the pages go on to the last event.
	all := len(events) + 1
	lastPage, lastCount := (all+99)/100, all%100
	if lastCount == 0 {
		lastCount = 100
	}
	var last page
	s.Do(t, Request{Path: fmt.Sprintf("/api/security-events/?page=%d&page_size=100", lastPage), Token: token}).Expect(t, 200).Decode(t, &last)
	if len(last.Events) != lastCount || last.NextPage != nil || last.Total != models.MaxCountedEvents {
		t.Fatalf("page %d: %d events, next %v, total %d; want %d, none, the cap", lastPage, len(last.Events), last.NextPage, last.Total, lastCount)
	}
	var before page
	s.Do(t, Request{Path: fmt.Sprintf("/api/security-events/?page=%d&page_size=100", lastPage-1), Token: token}).Expect(t, 200).Decode(t, &before)
	if len(before.Events) != 100 || before.NextPage == nil || *before.NextPage != lastPage {
		t.Fatalf("page %d: %d events, next %v; want 100 and next %d", lastPage-1, len(before.Events), before.NextPage, lastPage)
	}
	// A short history is counted in full.
	_, bob := s.UserWithToken(t, "bob")
	var short page
	s.Do(t, Request{Path: "/api/security-events/", Token: bob}).Expect(t, 200).Decode(t, &short)
	if short.Total != 1 || short.TotalCapped == nil || *short.TotalCapped || short.NextPage != nil {
		t.Fatalf("one event: total %d, capped %v, next %v; want 1, false, none", short.Total, short.TotalCapped, short.NextPage)
	}
}
