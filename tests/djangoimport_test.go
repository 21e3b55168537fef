package tests

import (
	"bytes"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"

	"tokenauth/app"
	"tokenauth/config"
	"tokenauth/djangoimport"
	"tokenauth/internal/testdb"
	"tokenauth/models"
	"tokenauth/password"
)

// The Django database made by testdata/django/make_fixture.py, and what it
// holds (the passwords and keys the test needs, written by the same script).
const (
	djangoFixture     = "testdata/django/fixture.sqlite3"
	djangoFixtureJSON = "testdata/django/fixture.json"
	djangoAPITable    = "accounts_apitoken"
)

type fixtureUser struct {
	ID         int64      `json:"id"`
	Username   string     `json:"username"`
	Email      string     `json:"email"`
	Password   *string    `json:"password"`
	Algorithm  string     `json:"algorithm"`
	IsActive   bool       `json:"is_active"`
	DateJoined time.Time  `json:"date_joined"`
	LastLogin  *time.Time `json:"last_login"`
}

type fixtureAPIToken struct {
	Username   string     `json:"username"`
	Key        string     `json:"key"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

type fixtureAuthToken struct {
	Username string    `json:"username"`
	Key      string    `json:"key"`
	Created  time.Time `json:"created"`
}

type djangoData struct {
	Users      []fixtureUser      `json:"users"`
	APITokens  []fixtureAPIToken  `json:"api_tokens"`
	AuthTokens []fixtureAuthToken `json:"auth_tokens"`
}

func loadDjangoData(t testing.TB) *djangoData {
	t.Helper()
	raw, err := os.ReadFile(djangoFixtureJSON)
	if err != nil {
		t.Fatalf("reading the fixture's expectations: %v", err)
	}
	var d djangoData
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decoding %s: %v", djangoFixtureJSON, err)
	}
	if len(d.Users) == 0 || len(d.APITokens) == 0 || len(d.AuthTokens) == 0 {
		t.Fatalf("%s holds no users or tokens", djangoFixtureJSON)
	}
	return &d
}

func (d *djangoData) user(t testing.TB, username string) fixtureUser {
	t.Helper()
	for _, u := range d.Users {
		if u.Username == username {
			return u
		}
	}
	t.Fatalf("no user %q in the fixture", username)
	return fixtureUser{}
}

func (d *djangoData) apiToken(t testing.TB, name string) fixtureAPIToken {
	t.Helper()
	for _, tok := range d.APITokens {
		if tok.Name == name {
			return tok
		}
	}
	t.Fatalf("no APIToken %q in the fixture", name)
	return fixtureAPIToken{}
}

// liveAPITokens are the APITokens that have not expired.
func (d *djangoData) liveAPITokens() []fixtureAPIToken {
	var live []fixtureAPIToken
	for _, tok := range d.APITokens {
		if tok.ExpiresAt == nil || tok.ExpiresAt.After(time.Now()) {
			live = append(live, tok)
		}
	}
	return live
}

// allKeys are every key of the fixture, live or not.
func (d *djangoData) allKeys() []string {
	var keys []string
	for _, tok := range d.APITokens {
		keys = append(keys, tok.Key)
	}
	for _, tok := range d.AuthTokens {
		keys = append(keys, tok.Key)
	}
	return keys
}

func apiTokenOptions(source string) djangoimport.Options {
	return djangoimport.Options{Source: source, TokenKind: djangoimport.KindAPIToken, TokenTable: djangoAPITable}
}

func authTokenOptions(source string) djangoimport.Options {
	return djangoimport.Options{Source: source, TokenKind: djangoimport.KindAuthToken}
}

// importDjango imports into the server's database and fails the test on
// an error.
func importDjango(t testing.TB, s *Server, opts djangoimport.Options) *djangoimport.Report {
	t.Helper()
	report, err := djangoimport.Import(t.Context(), s.DB, opts)
	if err != nil {
		t.Fatalf("import %s: %v", opts.TokenKind, err)
	}
	return report
}

// importedServer is a server with both token tables of the fixture
// imported. The fixture's dates are fixed, so the idle timeout is off
// here; TestDjangoImportIdleTokens covers it.
func importedServer(t *testing.T, source string, opts ...Option) (*Server, *djangoData) {
	t.Helper()
	d := loadDjangoData(t)
	s := NewServer(t, append(opts, WithConfig(func(c *config.Config) { c.TokenIdleTimeout = 0 }))...)
	api := importDjango(t, s, apiTokenOptions(source))
	live := len(d.liveAPITokens())
	if api.UsersImported != len(d.Users) || api.UsersSkipped != 0 || api.TokensImported != live ||
		api.TokensExpired != len(d.APITokens)-live || api.TokensSkipped != 0 {
		t.Fatalf("apitoken import report: %+v; want %d users, %d tokens, %d expired", api, len(d.Users), live, len(d.APITokens)-live)
	}
	auth := importDjango(t, s, authTokenOptions(source))
	if auth.UsersImported != 0 || auth.UsersSkipped != len(d.Users) || auth.TokensImported != len(d.AuthTokens) {
		t.Fatalf("authtoken import report: %+v; want %d users skipped, %d tokens", auth, len(d.Users), len(d.AuthTokens))
	}
	return s, d
}

func fileDigest(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func TestDjangoImportKeepsUsersAndTokens(t *testing.T) {
	t.Parallel()
	before := fileDigest(t, djangoFixture)
	s, d := importedServer(t, djangoFixture)
	if after := fileDigest(t, djangoFixture); after != before {
		t.Error("the import changed the Django database")
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(djangoFixture + suffix); err == nil {
			t.Errorf("the import left %s%s beside the Django database", djangoFixture, suffix)
		}
	}

	// Users keep what Django knew of them; their hashes are copied as they are.
	for _, want := range d.Users {
		u, err := models.FindUserByUsername(t.Context(), s.DB, want.Username)
		if err != nil {
			t.Fatalf("user %s: %v", want.Username, err)
		}
		if u.Username != want.Username || u.Email != want.Email || u.IsActive != want.IsActive ||
			!u.CreatedAt.Equal(want.DateJoined) || !sameTime(u.LastLoginAt, want.LastLogin) {
			t.Errorf("user %s: got %+v, want %+v", want.Username, u, want)
		}
		// Django's addresses were never proven here: unverified until the
		// user follows a link; a reset by address finds them.
		if u.EmailVerifiedAt != nil || u.EmailKey != models.EmailKey(want.Email) {
			t.Errorf("user %s: imported address verified at %v, folded %q", want.Username, u.EmailVerifiedAt, u.EmailKey)
		}
		if scheme, _ := password.ImportedScheme(u.PasswordHash); scheme != want.Algorithm {
			t.Errorf("user %s: stored hash scheme %q, want Django's %q", want.Username, scheme, want.Algorithm)
		}
		var mark models.ImportedUser
		if err := s.DB.Where("user_id = ?", u.ID).Take(&mark).Error; err != nil || mark.DjangoID != want.ID {
			t.Errorf("user %s: import record %+v (%v), want Django id %d", want.Username, mark, err, want.ID)
		}
	}

	// Every live Django token reaches the profile of its owner.
	type keyOwner struct{ key, username string }
	var keys []keyOwner
	for _, tok := range d.liveAPITokens() {
		keys = append(keys, keyOwner{tok.Key, tok.Username})
	}
	for _, tok := range d.AuthTokens {
		keys = append(keys, keyOwner{tok.Key, tok.Username})
	}
	for _, k := range keys {
		resp := s.Do(t, Request{Path: "/api/profile/", Token: k.key})
		if !d.user(t, k.username).IsActive {
			resp.ExpectError(t, http.StatusUnauthorized, "invalid_token")
			continue
		}
		if got := resp.Expect(t, http.StatusOK).JSON(t)["username"]; got != k.username {
			t.Errorf("token %s…: profile of %v, want %s", k.key[:8], got, k.username)
		}
	}
	expired := d.apiToken(t, "Old laptop")
	s.Do(t, Request{Path: "/api/profile/", Token: expired.Key}).ExpectError(t, http.StatusUnauthorized, "invalid_token")

	assertNoKeyStored(t, s, d.allKeys())
}

// sameTime compares optional times to the microsecond, the precision
// Django and PostgreSQL keep.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

func TestDjangoPasswordsLogInAndAreUpgraded(t *testing.T) {
	t.Parallel()
	s, d := importedServer(t, djangoFixture)
	want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", testPasswordParams.Memory, testPasswordParams.Time, testPasswordParams.Threads)
	for _, u := range d.Users {
		t.Run(u.Algorithm+"/"+u.Username, func(t *testing.T) {
			login := func(password string) *Response {
				return s.Do(t, Request{Method: "POST", Path: "/api/login/",
					Body: map[string]string{"username": u.Username, "password": password}})
			}
			if u.Password == nil {
				// Django's unusable password: no password logs in, and the
				// refusal is the ordinary one, not an error.
				login("anything at all").ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
				return
			}
			login(*u.Password+"x").ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
			if !u.IsActive {
				login(*u.Password).ExpectError(t, http.StatusUnauthorized, "account_disabled")
				return
			}
			token, _ := login(*u.Password).Expect(t, http.StatusOK).JSON(t)["token"].(string)
			s.Do(t, Request{Path: "/api/profile/", Token: token}).Expect(t, http.StatusOK)
			stored, err := models.FindUserByUsername(t.Context(), s.DB, u.Username)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(stored.PasswordHash, want) {
				t.Errorf("hash after login: %q, want the service's own %q...", stored.PasswordHash, want)
			}
			// The upgraded hash checks the same password.
			login(*u.Password).Expect(t, http.StatusOK)
			login(*u.Password+"x").ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
		})
	}
}

func TestLegacyTokensAreListedAndRotate(t *testing.T) {
	t.Parallel()
	s, d := importedServer(t, djangoFixture)
	alice := d.user(t, "alice")
	login := s.Login(t, "alice", *alice.Password)

	var body struct {
		Tokens []tokenJSON `json:"tokens"`
	}
	s.Do(t, Request{Path: "/api/tokens/", Token: login}).Expect(t, http.StatusOK).Decode(t, &body)
	byName := map[string]tokenJSON{}
	for _, tok := range body.Tokens {
		if tok.Legacy == nil {
			t.Fatalf("token %q has no legacy field", tok.Name)
		}
		byName[tok.Name] = tok
	}
	if tok := byName["login"]; *tok.Legacy {
		t.Errorf("the login token is listed as legacy: %+v", tok)
	}
	phone := d.apiToken(t, "Phone")
	ci := d.apiToken(t, "CI")
	var drf fixtureAuthToken
	for _, tok := range d.AuthTokens {
		if tok.Username == "alice" {
			drf = tok
		}
	}
	seconds := func(tm *time.Time) *time.Time {
		if tm == nil {
			return nil
		}
		u := tm.UTC().Truncate(time.Second)
		return &u
	}
	for _, want := range []struct {
		name, key         string
		created           time.Time
		lastUsed, expires *time.Time
	}{
		{phone.Name, phone.Key, phone.CreatedAt, phone.LastUsedAt, phone.ExpiresAt},
		{ci.Name, ci.Key, ci.CreatedAt, ci.LastUsedAt, ci.ExpiresAt},
		{"Django REST framework token", drf.Key, drf.Created, nil, nil},
	} {
		got, ok := byName[want.name]
		switch {
		case !ok:
			t.Errorf("token %q not listed: %+v", want.name, body.Tokens)
			continue
		case !*got.Legacy || got.Prefix != want.key[:8] || strings.Join(got.Scopes, " ") != "*":
			t.Errorf("token %q: got %+v, want legacy, prefix %s, scope *", want.name, got, want.key[:8])
		case !got.CreatedAt.Equal(want.created.Truncate(time.Second)) || !sameTime(got.ExpiresAt, seconds(want.expires)):
			t.Errorf("token %q dates: got %+v, want created %v, expires %v", want.name, got, want.created, want.expires)
		}
		if want.lastUsed != nil && !sameTime(got.LastUsedAt, seconds(want.lastUsed)) {
			t.Errorf("token %q last used: got %v, want %v", want.name, got.LastUsedAt, want.lastUsed)
		}
	}
	// Django REST framework records no use: the import counts as one.
	if got := byName["Django REST framework token"].LastUsedAt; got == nil || time.Since(*got) > time.Hour {
		t.Errorf("authtoken last used: got %v, want about now", got)
	}
	if _, ok := byName["Old laptop"]; ok {
		t.Error("an expired Django token was imported")
	}

	// Rotating a legacy token gives a tka_ token; the old key dies with it.
	var rotated struct {
		Token  string `json:"token"`
		Legacy bool   `json:"legacy"`
		Name   string `json:"name"`
	}
	s.Do(t, Request{Method: "POST", Path: fmt.Sprintf("/api/tokens/%d/rotate/", byName["Phone"].ID), Token: login}).
		Expect(t, http.StatusCreated).Decode(t, &rotated)
	if !models.WellFormedToken(rotated.Token) || rotated.Legacy || rotated.Name != "Phone" {
		t.Errorf("rotated: %+v", rotated)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: phone.Key}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Do(t, Request{Path: "/api/profile/", Token: rotated.Token}).Expect(t, http.StatusOK)
	var kind string
	s.DB.Model(&models.APIToken{}).Where("key_hash = ?", models.HashToken(rotated.Token)).Pluck("kind", &kind)
	if kind != models.KindPersonal {
		t.Errorf("kind of the rotated token: got %q, want %q", kind, models.KindPersonal)
	}
}

func TestLegacyLookingTokensCostOneLookup(t *testing.T) {
	t.Parallel()
	// Lookups are counted by the Authenticator (on PostgreSQL the lookup
	// bypasses GORM); any other statement would pass through GORM. Only
	// the request's statements count: the background workers (last-used
	// times, the change feed, the mail outbox) run their own at any time.
	// The callbacks go in before the app starts: registering them later
	// races with those workers.
	var others atomic.Int64
	count := func(tx *gorm.DB) {
		if tx.Statement.Context.Value(http.LocalAddrContextKey) != nil {
			others.Add(1)
		}
	}
	s, d := importedServer(t, djangoFixture, withBeforeStart(func(a *app.App) {
		if err := a.DB.Callback().Query().After("gorm:query").Register("test:count_queries", count); err != nil {
			t.Fatal(err)
		}
		if err := a.DB.Callback().Row().After("gorm:row").Register("test:count_rows", count); err != nil {
			t.Fatal(err)
		}
	}))
	phone := d.apiToken(t, "Phone").Key
	flipped := phone[:10] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", phone[10])+1)%16]) + phone[11:]
	frank, tka := s.UserWithToken(t, "frank")
	// Only an imported (legacy) token answers to a bare hex key, even if
	// another kind somehow had the matching hash.
	notImported := randomKey(t, 32)
	if err := s.DB.Create(&models.APIToken{UserID: frank.ID, Name: "not imported", Kind: models.KindPersonal,
		KeyHash: models.HashToken(notImported), Prefix: notImported[:8], Scopes: models.Scopes{"*"}}).Error; err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		token       string
		wantStatus  int
		wantLookups uint64
	}{
		{"imported key", phone, 200, 1},
		{"unknown 64-hex key", randomKey(t, 32), 401, 1},
		{"unknown 40-hex key", randomKey(t, 20), 401, 1},
		{"imported key with one digit changed", flipped, 401, 1},
		{"64 hex in upper case", strings.ToUpper(phone), 401, 0},
		{"63 hex", phone[:63], 401, 0},
		{"65 hex", phone + "0", 401, 0},
		{"64 characters, not hex", phone[:63] + "g", 401, 0},
		{"a stored key hash presented as a key", models.HashToken(tka), 401, 1},
		{"hex key of a token that was not imported", notImported, 401, 1},
		{"tka_ token", tka, 200, 1},
	}
	for _, tc := range cases {
		others.Store(0)
		before := s.Resolver.Stats().CacheMisses
		resp := s.Do(t, Request{Path: "/api/profile/", Token: tc.token})
		if tc.wantStatus == http.StatusOK {
			resp.Expect(t, http.StatusOK)
		} else {
			resp.ExpectError(t, tc.wantStatus, "invalid_token")
		}
		lookups := s.Resolver.Stats().CacheMisses - before
		if lookups != tc.wantLookups {
			t.Errorf("%s: %d lookups, want %d", tc.name, lookups, tc.wantLookups)
		}
		// On SQLite the lookup itself passes through GORM's callbacks.
		if n := others.Load(); n > int64(lookups) {
			t.Errorf("%s: %d statements beside %d lookups", tc.name, n, lookups)
		}
	}
}

func randomKey(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// assertNoKeyStored fails if any Django key appears in any row of the
// target database, or, on SQLite, anywhere in its files.
func assertNoKeyStored(t *testing.T, s *Server, keys []string) {
	t.Helper()
	tables := []string{"users", "api_tokens", "imported_users", "imported_tokens"}
	for _, table := range tables {
		var rows []map[string]any
		if err := s.DB.Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		if len(rows) == 0 {
			t.Fatalf("table %s is empty after the import", table)
		}
		for _, row := range rows {
			text := strings.ToLower(fmt.Sprint(row))
			for _, key := range keys {
				if strings.Contains(text, strings.ToLower(key)) {
					t.Errorf("table %s holds the plain key %s…: %v", table, key[:8], row)
				}
			}
		}
	}
	if config.IsPostgres(s.Config.DatabaseURL) {
		return
	}
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(s.Config.DatabaseURL + suffix)
		if err != nil {
			if suffix == "" {
				t.Fatal(err)
			}
			continue
		}
		for _, key := range keys {
			if bytes.Contains(raw, []byte(key)) {
				t.Errorf("the SQLite file%s holds the plain key %s…", suffix, key[:8])
			}
		}
	}
}

// snapshot renders every row the import touches, to compare runs.
func snapshot(t testing.TB, db *gorm.DB) string {
	t.Helper()
	var out strings.Builder
	for _, table := range []string{"users", "api_tokens", "imported_users", "imported_tokens"} {
		var rows []map[string]any
		if err := db.Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		lines := make([]string, len(rows))
		for i, row := range rows {
			lines[i] = fmt.Sprint(row)
		}
		sort.Strings(lines)
		fmt.Fprintf(&out, "%s:\n%s\n", table, strings.Join(lines, "\n"))
	}
	return out.String()
}

func TestDjangoImportTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	s, d := importedServer(t, djangoFixture)
	alice := d.user(t, "alice")
	login := s.Login(t, "alice", *alice.Password) // upgrades alice's hash

	// Rotate a legacy token, then prune the revoked one: a new import must
	// not bring its key back.
	phone := d.apiToken(t, "Phone")
	var id uint
	s.DB.Model(&models.APIToken{}).Where("key_hash = ?", models.HashToken(phone.Key)).Pluck("id", &id)
	s.Do(t, Request{Method: "POST", Path: fmt.Sprintf("/api/tokens/%d/rotate/", id), Token: login}).Expect(t, http.StatusCreated)
	if n, err := models.PruneTokens(t.Context(), s.DB, 0); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}

	// The uses noted so far are written first: a background flush between
	// the two snapshots would be a change no import made.
	if err := s.Resolver.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s.DB)
	for _, opts := range []djangoimport.Options{apiTokenOptions(djangoFixture), authTokenOptions(djangoFixture)} {
		report := importDjango(t, s, opts)
		if report.UsersImported != 0 || report.TokensImported != 0 || report.UsersSkipped != len(d.Users) {
			t.Errorf("%s again: %+v, want nothing imported", opts.TokenKind, report)
		}
	}
	if wantSkipped := len(d.liveAPITokens()); importDjango(t, s, apiTokenOptions(djangoFixture)).TokensSkipped != wantSkipped {
		t.Errorf("tokens skipped: want %d", wantSkipped)
	}
	if after := snapshot(t, s.DB); after != before {
		t.Errorf("a second import changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	s.Do(t, Request{Path: "/api/profile/", Token: phone.Key}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	s.Login(t, "alice", *alice.Password)
}

func TestDjangoImportDryRun(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	empty := snapshot(t, s.DB)
	opts := apiTokenOptions(djangoFixture)
	opts.DryRun = true
	dry := importDjango(t, s, opts)
	if !dry.DryRun {
		t.Error("the report of a dry run does not say so")
	}
	if after := snapshot(t, s.DB); after != empty {
		t.Fatalf("a dry run wrote:\n%s", after)
	}
	opts.DryRun = false
	done := importDjango(t, s, opts)
	dry.DryRun = false
	if fmt.Sprintf("%+v", dry) != fmt.Sprintf("%+v", done) {
		t.Errorf("the dry run reported %+v, the import %+v", dry, done)
	}
	if done.UsersImported == 0 || done.TokensImported == 0 {
		t.Fatalf("the import imported nothing: %+v", done)
	}
	imported := snapshot(t, s.DB)
	opts.DryRun = true
	again := importDjango(t, s, opts)
	if again.UsersImported != 0 || again.TokensImported != 0 || again.UsersSkipped != done.UsersImported {
		t.Errorf("a dry run after the import: %+v", again)
	}
	if after := snapshot(t, s.DB); after != imported {
		t.Error("a dry run after the import changed the database")
	}
}

func TestDjangoImportConflictingUsername(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	// Another person already has "alice" here (spelt in another case).
	s.CreateUser(t, "ALICE", testPassword)
	before := snapshot(t, s.DB)
	_, err := djangoimport.Import(t.Context(), s.DB, apiTokenOptions(djangoFixture))
	if err == nil {
		t.Fatal("the import succeeded over an existing username")
	}
	if msg := err.Error(); !strings.Contains(msg, "alice") || !strings.Contains(msg, "nothing was imported") {
		t.Errorf("message: %q, want it to name alice and say nothing was imported", msg)
	}
	if after := snapshot(t, s.DB); after != before {
		t.Errorf("a failed import wrote:\n%s", after)
	}
	// The account that was there is untouched.
	s.Login(t, "alice", testPassword)
}

func TestDjangoImportFailingLateWritesNothing(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	d := loadDjangoData(t)
	// A token that was never imported already has the key of a Django
	// token: the import finds out only after it has created the users.
	mallory := s.CreateUser(t, "mallory", testPassword)
	tok, err := models.NewLegacyToken(models.LegacyToken{UserID: mallory.ID, Key: d.apiToken(t, "CI").Key, Name: "planted"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Create(tok).Error; err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s.DB)
	_, err = djangoimport.Import(t.Context(), s.DB, apiTokenOptions(djangoFixture))
	if err == nil || !strings.Contains(err.Error(), "nothing was imported") {
		t.Fatalf("got %v, want the import to fail", err)
	}
	if after := snapshot(t, s.DB); after != before {
		t.Errorf("the failed import left rows behind:\n%s", after)
	}
}

// copyFixture copies the Django database to a file the test may change.
func copyFixture(t *testing.T) (string, *gorm.DB) {
	t.Helper()
	raw, err := os.ReadFile(djangoFixture)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "django.sqlite3")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return path, db
}

func TestDjangoImportBrokenSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.sqlite3")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDB := filepath.Join(dir, "empty.sqlite3")
	if db, err := gorm.Open(sqlite.Open(emptyDB), &gorm.Config{}); err != nil || db.Exec("CREATE TABLE other (id integer)").Error != nil {
		t.Fatalf("making an empty database: %v", err)
	}
	twins, twinsDB := copyFixture(t)
	if err := twinsDB.Exec(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES ('!', 0, 'ALICE', '', '', '', 0, 1, '2020-01-01 00:00:00')`).Error; err != nil {
		t.Fatal(err)
	}
	shortKeys, shortKeysDB := copyFixture(t)
	if err := shortKeysDB.Exec(`UPDATE accounts_apitoken SET key = substr(key, 1, 40) WHERE name = 'CI'`).Error; err != nil {
		t.Fatal(err)
	}
	damaged, damagedDB := copyFixture(t)
	setDjangoPasswords(t, damagedDB, map[string]string{"bob": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ"})
	orphan, orphanDB := copyFixture(t)
	if err := orphanDB.Exec("PRAGMA foreign_keys = OFF").Error; err != nil {
		t.Fatal(err)
	}
	if err := orphanDB.Exec(`INSERT INTO accounts_apitoken (user_id, key, name, created_at) VALUES (999, ?, 'orphan', '2020-01-01 00:00:00')`,
		randomKey(t, 32)).Error; err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		opts djangoimport.Options
		want string
	}{
		{"missing file", apiTokenOptions(filepath.Join(dir, "nope.sqlite3")), "no such file"},
		{"not a database", apiTokenOptions(garbage), "auth_user"},
		{"no Django tables", apiTokenOptions(emptyDB), "auth_user"},
		{"unknown token table", djangoimport.Options{Source: djangoFixture, TokenKind: djangoimport.KindAPIToken, TokenTable: "shop_apitoken"}, "shop_apitoken"},
		{"apitoken without a table", djangoimport.Options{Source: djangoFixture, TokenKind: djangoimport.KindAPIToken}, "must be given"},
		{"unknown kind", djangoimport.Options{Source: djangoFixture, TokenKind: "jwt"}, "unknown token kind"},
		{"SQL as a table name", djangoimport.Options{Source: djangoFixture, TokenKind: djangoimport.KindAPIToken, TokenTable: "x; DROP TABLE auth_user"}, "not a table name"},
		{"apitoken kind on the authtoken table", djangoimport.Options{Source: djangoFixture, TokenKind: djangoimport.KindAPIToken, TokenTable: "authtoken_token"}, "table authtoken_token"},
		{"authtoken kind on the apitoken table", djangoimport.Options{Source: djangoFixture, TokenKind: djangoimport.KindAuthToken, TokenTable: djangoAPITable}, "table accounts_apitoken"},
		{"keys of the other kind", apiTokenOptions(shortKeys), "is not 64 lower-case hex characters (is the token kind right?)"},
		{"usernames equal but for case", apiTokenOptions(twins), `"alice" and "ALICE"`},
		{"token of a missing user", apiTokenOptions(orphan), "user id 999"},
		{"a damaged hash in the service's own format", apiTokenOptions(damaged), `the password hash of "bob" is in tokenauth's own format`},
		{"unreachable PostgreSQL", apiTokenOptions("postgres://postgres@127.0.0.1:1/django?sslmode=disable"), "opening the Django database"},
		{"no source", djangoimport.Options{TokenKind: djangoimport.KindAuthToken}, "no Django database"},
	}
	s := NewServer(t)
	before := snapshot(t, s.DB)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			report, err := djangoimport.Import(t.Context(), s.DB, tc.opts)
			if err == nil {
				t.Fatalf("no error; report %+v", report)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if after := snapshot(t, s.DB); after != before {
		t.Errorf("failed imports wrote:\n%s", after)
	}
}

func TestDjangoImportIdleTokens(t *testing.T) {
	t.Parallel()
	d := loadDjangoData(t)
	// The fixture's last uses are long past: under a 90-day idle timeout
	// the report warns about the APITokens, and the import can be told to
	// count as their last use instead.
	for _, countsAsUse := range []bool{false, true} {
		t.Run(fmt.Sprintf("import counts as use: %v", countsAsUse), func(t *testing.T) {
			s := NewServer(t) // default TOKEN_IDLE_TIMEOUT, 2160h
			opts := apiTokenOptions(djangoFixture)
			opts.IdleTimeout, opts.MaxTokensPerUser, opts.ImportCountsAsUse = s.Config.TokenIdleTimeout, 1, countsAsUse
			report := importDjango(t, s, opts)
			if report.UsersOverTokenLimit != 1 { // alice has two live APITokens
				t.Errorf("users over the token limit: got %d, want 1", report.UsersOverTokenLimit)
			}
			auth := authTokenOptions(djangoFixture)
			auth.IdleTimeout = s.Config.TokenIdleTimeout
			if r := importDjango(t, s, auth); r.TokensIdle != 0 {
				t.Errorf("authtokens reported idle: %+v", r)
			}
			phone := d.apiToken(t, "Phone").Key
			resp := s.Do(t, Request{Path: "/api/profile/", Token: phone})
			if countsAsUse {
				if report.TokensIdle != 0 {
					t.Errorf("idle tokens reported: %d, want 0", report.TokensIdle)
				}
				resp.Expect(t, http.StatusOK)
			} else {
				if report.TokensIdle != len(d.liveAPITokens()) {
					t.Errorf("idle tokens reported: %d, want %d", report.TokensIdle, len(d.liveAPITokens()))
				}
				resp.ExpectError(t, http.StatusUnauthorized, "invalid_token")
			}
			// An authtoken has no recorded use: the import is its last one.
			for _, tok := range d.AuthTokens {
				if d.user(t, tok.Username).IsActive {
					s.Do(t, Request{Path: "/api/profile/", Token: tok.Key}).Expect(t, http.StatusOK)
				}
			}
		})
	}
}

// djangoPostgresDDL is what Django 3.2's migrations create on PostgreSQL for
// the three tables the import reads (indexes other than the unique ones left
// out).
const djangoPostgresDDL = `
CREATE TABLE auth_user (
    id serial PRIMARY KEY,
    password varchar(128) NOT NULL,
    last_login timestamp with time zone,
    is_superuser boolean NOT NULL,
    username varchar(150) NOT NULL UNIQUE,
    first_name varchar(150) NOT NULL,
    last_name varchar(150) NOT NULL,
    email varchar(254) NOT NULL,
    is_staff boolean NOT NULL,
    is_active boolean NOT NULL,
    date_joined timestamp with time zone NOT NULL
);
CREATE TABLE accounts_apitoken (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED,
    key varchar(64) NOT NULL UNIQUE,
    name varchar(100) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    last_used_at timestamp with time zone,
    expires_at timestamp with time zone
);
CREATE TABLE authtoken_token (
    key varchar(40) PRIMARY KEY,
    created timestamp with time zone NOT NULL,
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
);`

// postgresDjango copies the fixture's Django tables, row for row, into a
// fresh PostgreSQL schema and returns its URL.
func postgresDjango(t *testing.T) string {
	t.Helper()
	url := testdb.URL(t)
	if !config.IsPostgres(url) {
		t.Fatalf("a PostgreSQL source needs TEST_DATABASE_URL, got %q", url)
	}
	database, err := config.OpenDatabase(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { database.Close() })
	dst := database.ORM
	if err := dst.Exec(djangoPostgresDDL).Error; err != nil {
		t.Fatalf("creating the Django tables: %v", err)
	}
	src, err := gorm.Open(sqlite.Open("file:"+djangoFixture+"?mode=ro"), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sqlDB, err := src.DB(); err == nil {
			sqlDB.Close()
		}
	}()
	for _, table := range []string{"auth_user", "accounts_apitoken", "authtoken_token"} {
		var rows []map[string]any
		if err := src.Table(table).Find(&rows).Error; err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		for _, row := range rows {
			for _, col := range []string{"is_superuser", "is_staff", "is_active"} {
				if v, ok := row[col].(int64); ok {
					row[col] = v != 0 // SQLite keeps booleans as integers
				}
			}
		}
		if err := dst.Table(table).Create(rows).Error; err != nil {
			t.Fatalf("copying %s: %v", table, err)
		}
	}
	return url
}

// TestDjangoImportFromEachSource imports from every kind of source this
// run has: the SQLite fixture always, and its copy on PostgreSQL when the
// tests run on PostgreSQL.
func TestDjangoImportFromEachSource(t *testing.T) {
	t.Parallel()
	sources := map[string]func(*testing.T) string{
		"SQLite": func(*testing.T) string { return djangoFixture },
	}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		sources["PostgreSQL"] = postgresDjango
	}
	for name, source := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkImportFrom(t, source(t))
		})
	}
}

func checkImportFrom(t *testing.T, source string) {
	s, d := importedServer(t, source)
	for _, u := range d.Users {
		if u.Password != nil && u.IsActive {
			s.Login(t, u.Username, *u.Password)
		}
	}
	for _, tok := range d.liveAPITokens() {
		if d.user(t, tok.Username).IsActive {
			s.Do(t, Request{Path: "/api/profile/", Token: tok.Key}).Expect(t, http.StatusOK)
		}
	}
	for _, tok := range d.AuthTokens {
		if d.user(t, tok.Username).IsActive {
			s.Do(t, Request{Path: "/api/profile/", Token: tok.Key}).Expect(t, http.StatusOK)
		}
	}
	alice, err := models.FindUserByUsername(t.Context(), s.DB, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := d.user(t, "alice"); !alice.CreatedAt.Equal(want.DateJoined) {
		t.Errorf("date joined: got %v, want %v", alice.CreatedAt, want.DateJoined)
	}
	assertNoKeyStored(t, s, d.allKeys())
}

func TestLeakedLegacyKeyCanBeRevoked(t *testing.T) {
	t.Parallel()
	s, d := importedServer(t, djangoFixture)
	bob := d.apiToken(t, "Backup script")
	s.Do(t, Request{Path: "/api/profile/", Token: bob.Key}).Expect(t, http.StatusOK)
	s.Do(t, Request{Method: "POST", Path: "/api/tokens/revoke-leaked/",
		Body: map[string]any{"tokens": []string{bob.Key, randomKey(t, 20)}}}).Expect(t, http.StatusAccepted)
	s.Do(t, Request{Path: "/api/profile/", Token: bob.Key}).ExpectError(t, http.StatusUnauthorized, "invalid_token")
	var reason string
	s.DB.Model(&models.APIToken{}).Where("key_hash = ?", models.HashToken(bob.Key)).Pluck("revoked_reason", &reason)
	if reason != models.RevokedByLeakReport {
		t.Errorf("revoked_reason: got %q, want %q", reason, models.RevokedByLeakReport)
	}
}

// setDjangoPasswords replaces the hashes of the Django users named in
// hashes (username to hash), in a copy of the fixture.
func setDjangoPasswords(t *testing.T, db *gorm.DB, hashes map[string]string) {
	t.Helper()
	for username, hash := range hashes {
		res := db.Exec("UPDATE auth_user SET password = ? WHERE username = ?", hash, username)
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("setting the hash of %s: %v (%d rows)", username, res.Error, res.RowsAffected)
		}
	}
}

// addDjangoUser adds an active user with the given hash to a copy of the
// fixture.
func addDjangoUser(t *testing.T, db *gorm.DB, username, hash string) {
	t.Helper()
	if err := db.Exec(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES (?, 0, ?, '', '', '', 0, 1, '2020-01-01 00:00:00')`, hash, username).Error; err != nil {
		t.Fatalf("adding %s: %v", username, err)
	}
}

func TestDjangoImportReportShowsNoHash(t *testing.T) {
	t.Parallel()
	path, db := copyFixture(t)
	md5Sum := md5.Sum([]byte("password"))
	bareMD5 := hex.EncodeToString(md5Sum[:])
	sha1Sum := sha1.Sum([]byte("password"))
	saltedMD5 := md5.Sum([]byte("pepperpassword"))
	hashes := map[string]string{
		"alice": bareMD5,                        // Django's UnsaltedMD5PasswordHasher
		"bob":   "correct horse battery staple", // a password stored as typed
		"carol": "md5$$" + bareMD5,              // the same, as older Django wrote it
		"dave":  "sha1$$" + hex.EncodeToString(sha1Sum[:]),
		"Zoë":   "$2b$04$vmK/Ozjoj1cSGHVDLTWRIe.a3xYiq3DTiSdDB1UY9fG4uJSSB9bgq", // bcrypt without Django's name
	}
	setDjangoPasswords(t, db, hashes)
	added := map[string]string{
		"frank": "hunter2$dollar sign",             // a password with a "$"
		"grace": "legacy_sha256$pepper$c2VjcmV0Cg", // a custom hasher's
		"heidi": "md5$pepper$" + hex.EncodeToString(saltedMD5[:]),
	}
	for username, hash := range added {
		addDjangoUser(t, db, username, hash)
		hashes[username] = hash
	}

	s := NewServer(t)
	report := importDjango(t, s, apiTokenOptions(path))
	want := map[string]int{"unsalted_md5": 2, "unsalted_sha1": 1, "md5": 1, password.SchemeUnknown: 4, password.SchemeUnusable: 1}
	if fmt.Sprint(report.Passwords) != fmt.Sprint(want) {
		t.Errorf("password schemes: got %v, want %v", report.Passwords, want)
	}
	if got := len(report.NoPasswordLogin); got != len(hashes)+1 { // and erin, whose password is unusable
		t.Errorf("users who cannot log in with a password: got %v, want all %d", report.NoPasswordLogin, len(hashes)+1)
	}
	var out bytes.Buffer
	report.Print(&out)
	if line := "password hashes: md5 1, unknown 4, unsalted_md5 2, unsalted_sha1 1, unusable 1\n"; !strings.Contains(out.String(), line) {
		t.Errorf("the report lacks %q:\n%s", line, out.String())
	}
	for username, hash := range hashes {
		for _, part := range append(strings.Split(hash, "$"), hash) {
			if len(part) >= 6 && strings.Contains(out.String(), part) {
				t.Errorf("the report shows %q, part of the hash of %s:\n%s", part, username, out.String())
			}
		}
	}
	// None of them logs in, not even with what is stored.
	for username, typed := range map[string]string{"alice": "password", "bob": hashes["bob"], "carol": "password", "frank": hashes["frank"]} {
		s.Do(t, Request{Method: "POST", Path: "/api/login/", Body: map[string]string{"username": username, "password": typed}}).
			ExpectError(t, http.StatusUnauthorized, "invalid_credentials")
	}
}

// The hashes below are right for costlyArgon2Password, so a login that ran
// one would succeed: a refusal shows that it never ran.
const (
	costlyArgon2Password = "pässwörd with ünïcode"
	argon2idAtTimeLimit  = "$argon2id$v=19$m=8,t=100,p=1$b3ZlciB0aGUgbGltaXRz$BrYv/DpAunxYo3uIZ5xeAQ"
	argon2idOverTime     = "$argon2id$v=19$m=8,t=101,p=1$b3ZlciB0aGUgbGltaXRz$Eb3yjdUftPMOQWmuI69M+A"
	argon2idOverMemory   = "$argon2id$v=19$m=1048580,t=1,p=1$b3ZlciB0aGUgbGltaXRz$NiIRJpL6uALDfdx69v3QPg"
)

func TestDjangoImportRefusesCostlyArgon2(t *testing.T) {
	t.Parallel()
	path, db := copyFixture(t)
	setDjangoPasswords(t, db, map[string]string{
		"alice": argon2idAtTimeLimit,
		"bob":   argon2idOverTime,
		"carol": argon2idOverMemory,
		"Zoë":   "argon2" + argon2idOverMemory, // as Django's Argon2PasswordHasher writes it
	})
	hasher := password.NewHasher(testPasswordParams, 4)
	var hashed atomic.Int64
	hasher.OnBusy(func(busy bool) {
		if busy {
			hashed.Add(1)
		}
	})
	s := NewServer(t, WithApp(app.WithPasswordHasher(hasher)))
	report := importDjango(t, s, apiTokenOptions(path))
	if got, want := strings.Join(report.NoPasswordLogin, ", "), "bob, carol, erin, Zoë"; got != want {
		t.Errorf("users who cannot log in with a password: got %s, want %s", got, want)
	}
	if n := report.Passwords["argon2id"]; n != 3 {
		t.Errorf("argon2id hashes counted: %d, want 3", n)
	}
	s.CreateUser(t, "mallory", testPassword)

	cases := []struct {
		name, username, password string
		wantStatus               int
		wantHashes               int64
	}{
		{"hash at the limits", "alice", costlyArgon2Password, http.StatusOK, 2}, // checked, then replaced
		{"one pass too many", "bob", costlyArgon2Password, http.StatusUnauthorized, 1},
		{"over 1 GiB", "carol", costlyArgon2Password, http.StatusUnauthorized, 1},
		{"over 1 GiB, Django's format", "Zoë", costlyArgon2Password, http.StatusUnauthorized, 1},
		// What the refusals are held to: the cost of any wrong password.
		{"wrong password", "mallory", "not the password", http.StatusUnauthorized, 1},
		{"unknown username", "nobody", costlyArgon2Password, http.StatusUnauthorized, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hashed.Store(0)
			resp := s.Do(t, Request{Method: "POST", Path: "/api/login/",
				Body: map[string]string{"username": tc.username, "password": tc.password}})
			if n := hashed.Load(); n != tc.wantHashes {
				t.Errorf("%d hashes, want %d", n, tc.wantHashes)
			}
			if tc.wantStatus == http.StatusOK {
				resp.Expect(t, http.StatusOK)
			} else {
				resp.ExpectError(t, tc.wantStatus, "invalid_credentials")
			}
		})
	}
}

func TestDjangoImportWarnsOfCheapPBKDF2(t *testing.T) {
	t.Parallel()
	d := loadDjangoData(t)
	path, db := copyFixture(t)
	pbkdf2Hash := func(username string, iterations int) string {
		key, err := pbkdf2.Key(sha256.New, *d.user(t, username).Password, []byte("pepper"), iterations, sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("pbkdf2_sha256$%d$pepper$%s", iterations, base64.StdEncoding.EncodeToString(key))
	}
	// The report reads the count, not the key: bob's and carol's keys are
	// well formed but of another password, which spares the test their cost.
	withKeyOf := func(iterations int) string {
		return fmt.Sprintf("pbkdf2_sha256$%d$pepper$%s", iterations, base64.StdEncoding.EncodeToString(make([]byte, sha256.Size)))
	}
	setDjangoPasswords(t, db, map[string]string{
		"alice": pbkdf2Hash("alice", 1),
		"bob":   withKeyOf(password.MinPBKDF2Iterations - 1),
		"carol": withKeyOf(password.MinPBKDF2Iterations),
	})
	// dave and Zoë keep the fixture's 1,000 iterations.
	s := NewServer(t, WithConfig(func(c *config.Config) { c.TokenIdleTimeout = 0 }))
	report := importDjango(t, s, apiTokenOptions(path))
	if got, want := strings.Join(report.WeakPasswords, ", "), "alice, bob, dave, Zoë"; got != want {
		t.Errorf("users warned of a weak hash: got %s, want %s", got, want)
	}
	var out bytes.Buffer
	report.Print(&out)
	if line := "warning: 4 user(s) have a pbkdf2_sha256 hash of fewer than 100000 iterations"; !strings.Contains(out.String(), line) ||
		!strings.Contains(out.String(), "alice, bob, dave, Zoë\n") {
		t.Errorf("the report lacks %q naming alice, bob, dave and Zoë:\n%s", line, out.String())
	}
	// A weak hash still logs in, and the login replaces it.
	s.Login(t, "alice", *d.user(t, "alice").Password)
	if u, err := models.FindUserByUsername(t.Context(), s.DB, "alice"); err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("alice's hash after login: %v %v, want the service's own", u, err)
	}
}
