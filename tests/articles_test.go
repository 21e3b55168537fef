package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tokenauth/models"
)

// article is an article as the API renders it.
type article struct {
	ID     uint   `json:"id"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	Author struct {
		ID       uint   `json:"id"`
		Username string `json:"username"`
	} `json:"author"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type articlePage struct {
	Articles []article `json:"articles"`
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	Total    int       `json:"total"`
	NextPage *int      `json:"next_page"`
}

// writeArticle creates an article through the API and returns it.
func writeArticle(t *testing.T, s *Server, token, title, body string) article {
	t.Helper()
	var a article
	s.Do(t, Request{Method: "POST", Path: "/api/articles/", Token: token,
		Body: map[string]string{"title": title, "body": body}}).Expect(t, http.StatusCreated).Decode(t, &a)
	return a
}

func TestArticleLifecycle(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice, token := s.UserWithToken(t, "alice")

	resp := s.Do(t, Request{Method: "POST", Path: "/api/articles", Token: token,
		Body: map[string]string{"title": "Héllo, wörld", "body": "First post.\nTwo lines."}}).Expect(t, http.StatusCreated)
	var created article
	resp.Decode(t, &created)
	if created.ID == 0 || created.Title != "Héllo, wörld" || created.Body != "First post.\nTwo lines." {
		t.Errorf("created: got %+v", created)
	}
	if created.Author.ID != alice.ID || created.Author.Username != "alice" {
		t.Errorf("author: got %+v, want alice (%d)", created.Author, alice.ID)
	}
	if d := time.Since(created.CreatedAt); d < -time.Minute || d > time.Minute || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("times: created %v, updated %v", created.CreatedAt, created.UpdatedAt)
	}
	path := fmt.Sprintf("/api/articles/%d/", created.ID)
	if got := resp.Header.Get("Location"); got != path {
		t.Errorf("Location: got %q, want %q", got, path)
	}

	var shown article
	s.Do(t, Request{Path: path, Token: token}).Expect(t, http.StatusOK).Decode(t, &shown)
	if shown != created {
		t.Errorf("shown: got %+v, want %+v", shown, created)
	}
	s.Do(t, Request{Path: strings.TrimSuffix(path, "/"), Token: token}).Expect(t, http.StatusOK)

	// PATCH changes only the fields it names.
	var updated article
	s.Do(t, Request{Method: "PATCH", Path: path, Token: token, Body: map[string]string{"title": "Hello, world"}}).
		Expect(t, http.StatusOK).Decode(t, &updated)
	if updated.Title != "Hello, world" || updated.Body != created.Body || updated.ID != created.ID || updated.Author != created.Author {
		t.Errorf("after a title change: got %+v", updated)
	}
	s.Do(t, Request{Method: "PATCH", Path: path, Token: token, Body: map[string]any{"body": "", "title": nil}}).
		Expect(t, http.StatusOK).Decode(t, &updated)
	if updated.Title != "Hello, world" || updated.Body != "" {
		t.Errorf("after emptying the body: got %+v", updated)
	}
	s.Do(t, Request{Method: "PATCH", Path: path, Token: token, Body: map[string]any{}}).Expect(t, http.StatusOK).Decode(t, &updated)
	if updated.Title != "Hello, world" || updated.Body != "" {
		t.Errorf("after an empty change: got %+v", updated)
	}
	var stored models.Article
	if err := s.DB.First(&stored, created.ID).Error; err != nil {
		t.Fatal(err)
	}
	if stored.Title != "Hello, world" || stored.Body != "" || stored.AuthorID != alice.ID {
		t.Errorf("stored: got %+v", stored)
	}

	s.Do(t, Request{Method: "DELETE", Path: path, Token: token}).Expect(t, http.StatusNoContent)
	s.Do(t, Request{Path: path, Token: token}).ExpectError(t, http.StatusNotFound, "not_found")
	s.Do(t, Request{Method: "DELETE", Path: path, Token: token}).ExpectError(t, http.StatusNotFound, "not_found")
	s.Do(t, Request{Method: "PATCH", Path: path, Token: token, Body: map[string]string{"title": "x"}}).
		ExpectError(t, http.StatusNotFound, "not_found")
}

func TestArticleValidation(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	existing := writeArticle(t, s, token, "Kept", "Kept body")
	path := fmt.Sprintf("/api/articles/%d/", existing.ID)

	cases := []struct {
		name      string
		method    string
		body      any
		wantCode  string
		wantField string
	}{
		{"no title", "POST", map[string]any{"body": "text"}, "validation_failed", "title"},
		{"empty title", "POST", map[string]any{"title": ""}, "validation_failed", "title"},
		{"blank title", "POST", map[string]any{"title": " \t "}, "validation_failed", "title"},
		{"title of 201 characters", "POST", map[string]any{"title": strings.Repeat("é", 201)}, "validation_failed", "title"},
		{"title with a newline", "POST", map[string]any{"title": "two\nlines"}, "validation_failed", "title"},
		{"body over 100,000 characters", "POST", map[string]any{"title": "t", "body": strings.Repeat("b", 100001)}, "validation_failed", "body"},
		{"body with a NUL character", "POST", map[string]any{"title": "t", "body": "a\x00b"}, "validation_failed", "body"},
		{"title as a number", "POST", `{"title": 7}`, "validation_failed", "title"},
		{"unknown field", "POST", map[string]any{"title": "t", "author_id": 2}, "validation_failed", "author_id"},
		{"not JSON", "POST", "title=t", "invalid_json", ""},
		{"no body", "POST", nil, "invalid_json", ""},
		{"PATCH to an empty title", "PATCH", map[string]any{"title": ""}, "validation_failed", "title"},
		{"PATCH to a blank title", "PATCH", map[string]any{"title": "   "}, "validation_failed", "title"},
		{"PATCH to an overlong body", "PATCH", map[string]any{"body": strings.Repeat("b", 100001)}, "validation_failed", "body"},
		{"PATCH with an unknown field", "PATCH", map[string]any{"author": map[string]any{"id": 2}}, "validation_failed", "author"},
		{"PATCH with bytes after the object", "PATCH", `{"title":"t"} {}`, "invalid_json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/api/articles/"
			if tc.method == "PATCH" {
				target = path
			}
			body := s.Do(t, Request{Method: tc.method, Path: target, Token: token, Body: tc.body}).
				ExpectError(t, http.StatusBadRequest, tc.wantCode)
			if tc.wantField != "" {
				Field(t, body, tc.wantField)
			}
		})
	}

	// The limits themselves are allowed, counted in characters.
	longest := writeArticle(t, s, token, strings.Repeat("é", 200), strings.Repeat("ü", 100000))
	if len([]rune(longest.Title)) != 200 || len([]rune(longest.Body)) != 100000 {
		t.Errorf("longest article came back with %d and %d characters", len([]rune(longest.Title)), len([]rune(longest.Body)))
	}

	// No refused request wrote anything.
	var kept article
	s.Do(t, Request{Path: path, Token: token}).Expect(t, http.StatusOK).Decode(t, &kept)
	if kept.Title != "Kept" || kept.Body != "Kept body" {
		t.Errorf("a refused PATCH changed the article: %+v", kept)
	}
	var count int64
	s.DB.Model(&models.Article{}).Count(&count)
	if count != 2 {
		t.Errorf("articles stored: got %d, want 2", count)
	}
}

func TestArticleOwnership(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, aliceToken := s.UserWithToken(t, "alice")
	_, bobToken := s.UserWithToken(t, "bob")
	a := writeArticle(t, s, aliceToken, "Alice's", "mine")
	path := fmt.Sprintf("/api/articles/%d/", a.ID)

	// Bob reads Alice's article, alone and in the list.
	var seen article
	s.Do(t, Request{Path: path, Token: bobToken}).Expect(t, http.StatusOK).Decode(t, &seen)
	if seen != a {
		t.Errorf("bob sees %+v, want %+v", seen, a)
	}
	var list articlePage
	s.Do(t, Request{Path: "/api/articles/", Token: bobToken}).Expect(t, http.StatusOK).Decode(t, &list)
	if list.Total != 1 || len(list.Articles) != 1 || list.Articles[0] != a {
		t.Errorf("bob's list: got %+v", list)
	}

	// He may not change or delete it, even with a body that would be
	// invalid: ownership is decided first.
	s.Do(t, Request{Method: "PATCH", Path: path, Token: bobToken, Body: map[string]string{"title": "Bob's now"}}).
		ExpectError(t, http.StatusForbidden, "forbidden")
	s.Do(t, Request{Method: "PATCH", Path: path, Token: bobToken, Body: map[string]string{"title": ""}}).
		ExpectError(t, http.StatusForbidden, "forbidden")
	s.Do(t, Request{Method: "DELETE", Path: path, Token: bobToken}).ExpectError(t, http.StatusForbidden, "forbidden")

	s.Do(t, Request{Path: path, Token: aliceToken}).Expect(t, http.StatusOK).Decode(t, &seen)
	if seen != a {
		t.Errorf("after bob's attempts: got %+v, want %+v", seen, a)
	}
	// Bob's own article is his to delete.
	b := writeArticle(t, s, bobToken, "Bob's", "")
	s.Do(t, Request{Method: "DELETE", Path: fmt.Sprintf("/api/articles/%d", b.ID), Token: bobToken}).Expect(t, http.StatusNoContent)
}

func TestArticleNotFound(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	_, token := s.UserWithToken(t, "alice")
	a := writeArticle(t, s, token, "Only one", "")

	for _, id := range []string{fmt.Sprint(a.ID + 1), "abc", "0", "-1", "1.0", "99999999999999999999", "%20"} {
		path := "/api/articles/" + id + "/"
		t.Run(id, func(t *testing.T) {
			s.Do(t, Request{Path: path, Token: token}).ExpectError(t, http.StatusNotFound, "not_found")
			s.Do(t, Request{Method: "PATCH", Path: path, Token: token, Body: map[string]string{"title": "x"}}).
				ExpectError(t, http.StatusNotFound, "not_found")
			s.Do(t, Request{Method: "DELETE", Path: path, Token: token}).ExpectError(t, http.StatusNotFound, "not_found")
		})
	}

	resp := s.Do(t, Request{Method: "PUT", Path: fmt.Sprintf("/api/articles/%d/", a.ID), Token: token, OffSpec: true})
	resp.ExpectError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if got := resp.Header.Get("Allow"); !strings.Contains(got, "PATCH") || !strings.Contains(got, "DELETE") {
		t.Errorf("Allow: got %q, want it to list PATCH and DELETE", got)
	}
}

func TestArticleScopes(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice := s.CreateUser(t, "alice", testPassword)
	full := s.IssueToken(t, alice)
	a := writeArticle(t, s, full, "Scoped", "")
	path := fmt.Sprintf("/api/articles/%d/", a.ID)

	read := s.IssueToken(t, alice, "articles:read")
	write := s.IssueToken(t, alice, "articles:write")
	both := s.IssueToken(t, alice, "articles:read", "articles:write")
	profile := s.IssueToken(t, alice, "profile:read", "profile:write")

	type call struct {
		method, path string
		body         any
		okStatus     int
		scope        string
	}
	calls := []call{
		{"GET", "/api/articles/", nil, http.StatusOK, "articles:read"},
		{"GET", path, nil, http.StatusOK, "articles:read"},
		{"POST", "/api/articles/", map[string]string{"title": "t"}, http.StatusCreated, "articles:write"},
		{"PATCH", path, map[string]string{"title": "t"}, http.StatusOK, "articles:write"},
	}
	cases := []struct {
		name    string
		token   string
		allowed map[string]bool
	}{
		{"articles:read", read, map[string]bool{"articles:read": true}},
		{"articles:write", write, map[string]bool{"articles:write": true}},
		{"articles:read and articles:write", both, map[string]bool{"articles:read": true, "articles:write": true}},
		{"profile scopes only", profile, map[string]bool{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range calls {
				resp := s.Do(t, Request{Method: c.method, Path: c.path, Token: tc.token, Body: c.body})
				if tc.allowed[c.scope] {
					resp.Expect(t, c.okStatus)
					continue
				}
				resp.ExpectError(t, http.StatusForbidden, "insufficient_scope")
				if got, want := resp.Header.Get("WWW-Authenticate"), `scope="`+c.scope+`"`; !strings.Contains(got, want) {
					t.Errorf("%s %s: WWW-Authenticate: got %q, want it to contain %s", c.method, c.path, got, want)
				}
			}
		})
	}
	// DELETE needs articles:write too; the read token cannot, the write
	// token can.
	s.Do(t, Request{Method: "DELETE", Path: path, Token: read}).ExpectError(t, http.StatusForbidden, "insufficient_scope")
	s.Do(t, Request{Method: "DELETE", Path: path, Token: write}).Expect(t, http.StatusNoContent)

	for _, c := range calls {
		s.Do(t, Request{Method: c.method, Path: c.path, Body: c.body}).ExpectError(t, http.StatusUnauthorized, "authentication_required")
	}
}

func TestArticlePagination(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice, token := s.UserWithToken(t, "alice")

	var page articlePage
	s.Do(t, Request{Path: "/api/articles/", Token: token}).Expect(t, http.StatusOK).Decode(t, &page)
	if page.Articles == nil || len(page.Articles) != 0 || page.Total != 0 || page.Page != 1 || page.PageSize != 20 || page.NextPage != nil {
		t.Errorf("empty list: got %+v", page)
	}

	const n = 45
	for i := range n {
		if _, err := models.CreateArticle(t.Context(), s.DB, alice, fmt.Sprintf("article %d", i), ""); err != nil {
			t.Fatal(err)
		}
	}

	// Walking next_page visits every article once, newest first.
	var titles []string
	pages := 0
	for next := 1; next != 0; pages++ {
		var p articlePage
		s.Do(t, Request{Path: fmt.Sprintf("/api/articles/?page=%d", next), Token: token}).Expect(t, http.StatusOK).Decode(t, &p)
		if p.Page != next || p.PageSize != 20 || p.Total != n {
			t.Fatalf("page %d: got page %d, page_size %d, total %d", next, p.Page, p.PageSize, p.Total)
		}
		for _, a := range p.Articles {
			titles = append(titles, a.Title)
		}
		next = 0
		if p.NextPage != nil {
			next = *p.NextPage
		}
		if pages > n {
			t.Fatal("next_page never ends")
		}
	}
	if pages != 3 || len(titles) != n {
		t.Fatalf("walked %d pages and %d articles, want 3 and %d", pages, len(titles), n)
	}
	for i, title := range titles {
		if want := fmt.Sprintf("article %d", n-1-i); title != want {
			t.Fatalf("article %d of the walk: got %q, want %q", i, title, want)
		}
	}

	cases := []struct {
		query     string
		wantPage  int
		wantSize  int
		wantCount int
		wantNext  *int
	}{
		{"page=3", 3, 20, 5, nil},                         // the last page is partial
		{"page=4", 4, 20, 0, nil},                         // past the end: empty, not an error
		{"page=2&page_size=45", 2, 45, 0, nil},            // the last page exactly full, then nothing
		{"page_size=45", 1, 45, 45, nil},                  // everything on one page
		{"page_size=44", 1, 44, 44, ptr(2)},               // one left over
		{"page_size=100", 1, 100, 45, nil},                // the maximum
		{"page_size=1&page=45", 45, 1, 1, nil},            // the very last article
		{"page=1&unknown=x", 1, 20, 20, ptr(2)},           // other parameters are ignored
		{"page_size=7&page=2", 2, 7, 7, ptr(3)},           // order does not matter
		{"page=1000000", 1000000, 20, 0, nil},             // the largest page
		{"page=1&page_size=1", 1, 1, 1, ptr(2)},           // the smallest page
		{"page=6&page_size=9", 6, 9, 0, nil},              // 45 = 5 pages of 9
		{"page=5&page_size=9", 5, 9, 9, nil},              // the fifth is the last
		{"page=1&page_size=20&page=9", 1, 20, 20, ptr(2)}, // the first of repeated values
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			var p articlePage
			s.Do(t, Request{Path: "/api/articles/?" + tc.query, Token: token}).Expect(t, http.StatusOK).Decode(t, &p)
			gotNext, wantNext := -1, -1
			if p.NextPage != nil {
				gotNext = *p.NextPage
			}
			if tc.wantNext != nil {
				wantNext = *tc.wantNext
			}
			if p.Page != tc.wantPage || p.PageSize != tc.wantSize || len(p.Articles) != tc.wantCount || p.Total != n || gotNext != wantNext {
				t.Errorf("got page %d, page_size %d, %d articles, total %d, next_page %d; want %d, %d, %d, %d, %d",
					p.Page, p.PageSize, len(p.Articles), p.Total, gotNext, tc.wantPage, tc.wantSize, tc.wantCount, n, wantNext)
			}
		})
	}

	bad := []struct{ query, field string }{
		{"page_size=101", "page_size"},
		{"page_size=1000000", "page_size"},
		{"page_size=0", "page_size"},
		{"page_size=-5", "page_size"},
		{"page_size=ten", "page_size"},
		{"page=0", "page"},
		{"page=-1", "page"},
		{"page=abc", "page"},
		{"page=1.5", "page"},
		{"page=1000001", "page"},
		{"page=", "page"},
		{"page_size=", "page_size"},
		{"page=99999999999999999999", "page"},
		{"page=%201", "page"},
	}
	for _, tc := range bad {
		t.Run(tc.query, func(t *testing.T) {
			body := s.Do(t, Request{Path: "/api/articles/?" + tc.query, Token: token}).ExpectError(t, http.StatusBadRequest, "validation_failed")
			Field(t, body, tc.field)
		})
	}
	body := s.Do(t, Request{Path: "/api/articles/?page=0&page_size=101", Token: token}).ExpectError(t, http.StatusBadRequest, "validation_failed")
	Field(t, body, "page")
	Field(t, body, "page_size")
}

func ptr(n int) *int { return &n }

func TestArticlesGoWithTheirAuthor(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	alice, aliceToken := s.UserWithToken(t, "alice")
	_, bobToken := s.UserWithToken(t, "bob")
	writeArticle(t, s, aliceToken, "Alice's", "")
	writeArticle(t, s, bobToken, "Bob's", "")

	if err := s.DB.Delete(&models.User{}, alice.ID).Error; err != nil {
		t.Fatal(err)
	}
	var list articlePage
	s.Do(t, Request{Path: "/api/articles/", Token: bobToken}).Expect(t, http.StatusOK).Decode(t, &list)
	if list.Total != 1 || len(list.Articles) != 1 || list.Articles[0].Title != "Bob's" {
		t.Errorf("after deleting alice: got %+v, want only bob's article", list)
	}
}
