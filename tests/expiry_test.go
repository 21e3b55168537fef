package tests

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tokenauth/app"
	"tokenauth/clock"
	"tokenauth/models"
)

// expiryEvents returns the expiry notices recorded, oldest first, as
// "type reason token".
func expiryEvents(t *testing.T, s *Server) []string {
	t.Helper()
	var events []models.SecurityEvent
	if err := s.DB.Where("type IN ?", []string{models.EventTokenExpiring, models.EventTokenExpired}).Order("id").
		Find(&events).Error; err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range events {
		out = append(out, fmt.Sprintf("%s %s %d", e.Type, e.Reason, *e.TokenID))
	}
	return out
}

// recordDue has the server record the notices due, twice and alongside
// its own worker, as several instances would.
func recordDue(t *testing.T, servers ...*Server) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range servers {
		s.Expiry.Wake()
		for range 2 {
			wg.Go(func() {
				if _, err := s.Expiry.RecordDue(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
}

// createExpiringToken makes a token with the API, expiring in days.
func createExpiringToken(t *testing.T, s *Server, login string, days int) uint {
	t.Helper()
	body := s.Do(t, Request{Method: "POST", Path: "/api/tokens/", Token: login,
		Body: map[string]any{"name": fmt.Sprintf("ci %d days", days), "expires_in_days": days}}).
		Expect(t, http.StatusCreated).JSON(t)
	return uint(body["id"].(float64))
}

// A token made with the API gets token_expiring 7 days and 1 day before it
// expires and token_expired when it has, each exactly once however many
// instances look; a login token gets none. A look after several moments
// passed tells only the latest. With a mail server, the user is mailed.
func TestExpiryNoticesComeOncePerToken(t *testing.T) {
	t.Parallel()
	ms := NewMailServer(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	a := NewServer(t, WithMailServer(ms), WithApp(app.WithClock(clk)))
	b := NewServer(t, WithDatabaseOf(a), WithMailServer(ms), WithApp(app.WithClock(clk)))
	u, login := a.UserWithToken(t, "ada")
	if err := models.SetEmail(t.Context(), a.DB, u, "ada@example.com", true); err != nil {
		t.Fatal(err)
	}
	month := createExpiringToken(t, a, login, 30)
	short := createExpiringToken(t, a, login, 3)
	day := 24 * time.Hour

	clk.Advance(24 * day) // 6 days before the month token expires, well past the short one
	recordDue(t, a, b)
	want := []string{fmt.Sprintf("token_expired  %d", short), fmt.Sprintf("token_expiring expires_in_7_days %d", month)}
	if got := expiryEvents(t, a); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after 24 days: %q, want %q (the short token's notices all passed but the last)", got, want)
	}

	// The clock moves only once the mail sent so far is out: a jump past
	// the lease of a mail being sent would have the other instance send it
	// again.
	mailOut := func() {
		waitFor(t, "the mail to be sent", func() bool {
			for _, m := range mailRows(t, a) {
				if m.DeliveredAt == nil {
					return false
				}
			}
			return true
		})
	}
	mailOut()
	clk.Advance(5*day + 12*time.Hour) // 12 hours before
	recordDue(t, a, b)
	mailOut()
	clk.Advance(day) // expired
	recordDue(t, a, b)
	recordDue(t, a, b)
	want = append(want, fmt.Sprintf("token_expiring expires_in_1_day %d", month), fmt.Sprintf("token_expired  %d", month))
	if got := expiryEvents(t, a); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after 31 days: %q, want %q", got, want)
	}
	mails := ms.WaitForMails(t, 4)
	subjects := map[string]int{}
	for _, m := range mails {
		subjects[m.Subject]++
	}
	if subjects["A tokenauth token of yours expires soon"] != 2 || subjects["A tokenauth token of yours has expired"] != 2 {
		t.Errorf("mail subjects: %v", subjects)
	}
}

// A token made 3 days before it expires: its 7-day notice had passed when
// it was made, so it gets the 1-day notice and token_expired only.
func TestExpiryNoticeWhoseMomentHadPassedIsSkipped(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)))
	_, login := s.UserWithToken(t, "ada")
	id := createExpiringToken(t, s, login, 3)
	var got []string
	for range 4 * 24 {
		clk.Advance(time.Hour)
		recordDue(t, s)
	}
	got = expiryEvents(t, s)
	want := []string{fmt.Sprintf("token_expiring expires_in_1_day %d", id), fmt.Sprintf("token_expired  %d", id)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// prune records token_expired before it deletes the expired token, and the
// user sees the notice.
func TestPruneRecordsTokenExpiredFirst(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	s := NewServer(t, WithApp(app.WithClock(clk)))
	u, login := s.UserWithToken(t, "ada")
	id := createExpiringToken(t, s, login, 1)
	expired := time.Now().Add(-time.Minute)
	// Expired by the system clock, which the prune command runs on; the
	// server's workers, on the fake clock, see it live.
	if err := s.DB.Model(&models.APIToken{}).Where("id = ?", id).
		UpdateColumns(map[string]any{"expires_at": expired, "expiry_notice_at": expired}).Error; err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, s, "prune")
	if err != nil || !strings.Contains(out, "recorded 1 notice(s) of token expiry") {
		t.Fatalf("prune: %q, %v", out, err)
	}
	var left int64
	s.DB.Model(&models.APIToken{}).Where("id = ?", id).Count(&left)
	events, _, err := models.ListEvents(t.Context(), s.DB, u.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range events {
		if e.Type == models.EventTokenExpired && e.TokenID != nil && *e.TokenID == id {
			found++
		}
	}
	if left != 0 || found != 1 {
		t.Errorf("after prune: token left %d, token_expired events %d; want 0 and 1", left, found)
	}
}
