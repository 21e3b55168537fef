// Package djangoimport moves users and their tokens from a Django database
// into tokenauth without logging anyone out: password hashes are copied as
// they are (login checks Django's formats and upgrades them), and token keys
// are stored hashed, as legacy tokens that keep working until rotated.
//
// Everything is written in one transaction of the target database: on any
// error nothing is imported. A dry run does all the work, reports it, and
// rolls back. Running the import again changes nothing: users and tokens
// imported before are recognised and skipped.
package djangoimport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"tokenauth/models"
	"tokenauth/password"
)

// Token kinds the import reads.
const (
	// KindAPIToken is a table of the Django APIToken model: user_id, a
	// 64-character lower-case hex key, name, created_at, last_used_at,
	// expires_at.
	KindAPIToken = "apitoken"
	// KindAuthToken is Django REST framework's authtoken table: key (40 hex
	// characters), created, user_id.
	KindAuthToken = "authtoken"
)

// DefaultUserTable and DefaultAuthTokenTable are Django's table names for
// its user model and for REST framework's tokens.
const (
	DefaultUserTable      = "auth_user"
	DefaultAuthTokenTable = "authtoken_token"
)

// Options says what to import from where.
type Options struct {
	// Source is the Django database: a postgres:// URL, or the path of a
	// SQLite file (opened read-only).
	Source string
	// UserTable is the table of Django's user model (DefaultUserTable when
	// empty); a custom user model must have AbstractUser's columns.
	UserTable string
	// TokenKind is KindAPIToken or KindAuthToken.
	TokenKind string
	// TokenTable is the table of the tokens. For KindAuthToken it defaults
	// to DefaultAuthTokenTable; an APIToken table is named after its Django
	// app (such as accounts_apitoken) and must be given.
	TokenTable string
	// DryRun does the whole import and reports it, then rolls it back.
	DryRun bool
	// ImportCountsAsUse records the import as the last use of every
	// imported token, so that TOKEN_IDLE_TIMEOUT counts from the import:
	// Django had no idle limit, and a token its client uses rarely would
	// otherwise be refused at once. Without it an APIToken keeps Django's
	// last_used_at.
	ImportCountsAsUse bool
	// IdleTimeout and MaxTokensPerUser are the service's settings. They
	// change nothing that is imported; the report warns about tokens they
	// will refuse or evict.
	IdleTimeout      time.Duration
	MaxTokensPerUser int
}

// Names given to imported tokens that have none in Django.
const (
	unnamedAPIToken = "Django token"
	authTokenName   = "Django REST framework token"
)

// batchSize bounds the rows of one statement (PostgreSQL allows 65535
// parameters).
const batchSize = 500

// maxListed is how many names a message or warning lists before "and N more".
const maxListed = 10

// errDryRun rolls the transaction of a dry run back.
var errDryRun = errors.New("dry run")

// Import reads the Django database of opts.Source and imports its users
// and tokens into target, in one transaction. On any error nothing is
// imported. A username that already belongs to a user of target who was not
// imported from Django fails the whole import: which of the two accounts
// is the person's is for the operator to decide.
func Import(ctx context.Context, target *gorm.DB, opts Options) (*Report, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	srcDB, err := openSource(opts.Source)
	if err != nil {
		return nil, err
	}
	defer closeSource(srcDB)
	src, err := readSource(ctx, srcDB, opts)
	if err != nil {
		return nil, err
	}
	if err := src.check(opts.TokenKind); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	report := &Report{DryRun: opts.DryRun, Passwords: map[string]int{}}
	err = target.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		userIDs, err := importUsers(tx, src.users, now, report)
		if err != nil {
			return err
		}
		if err := importTokens(tx, src.tokens, userIDs, opts, now, report); err != nil {
			return err
		}
		if opts.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, err
	}
	return report, nil
}

func (o *Options) normalize() error {
	if o.Source == "" {
		return errors.New("no Django database given")
	}
	if o.UserTable == "" {
		o.UserTable = DefaultUserTable
	}
	switch o.TokenKind {
	case KindAPIToken:
		if o.TokenTable == "" {
			return errors.New("the token table of an apitoken import must be given: Django names it <app>_apitoken")
		}
	case KindAuthToken:
		if o.TokenTable == "" {
			o.TokenTable = DefaultAuthTokenTable
		}
	default:
		return fmt.Errorf("unknown token kind %q: want %s or %s", o.TokenKind, KindAPIToken, KindAuthToken)
	}
	for _, table := range []string{o.UserTable, o.TokenTable} {
		if !identifier.MatchString(table) {
			return fmt.Errorf("%q is not a table name (letters, digits and _, optionally schema.table)", table)
		}
	}
	return nil
}

// check refuses what the target could not hold or the service could never
// use, before anything is written, naming every problem.
func (s *source) check(kind string) error {
	var problems []string
	users := make(map[int64]bool, len(s.users))
	folded := make(map[string]string, len(s.users))
	for _, u := range s.users {
		users[u.ID] = true
		switch {
		case u.Username == "":
			problems = append(problems, fmt.Sprintf("user id %d has an empty username", u.ID))
			continue
		case utf8.RuneCountInString(u.Username) > models.UsernameMaxLength:
			problems = append(problems, fmt.Sprintf("username %q is longer than %d characters", u.Username, models.UsernameMaxLength))
		case utf8.RuneCountInString(u.Email) > 254:
			problems = append(problems, fmt.Sprintf("the email address of %q is longer than 254 characters", u.Username))
		case len(u.Password) > 255:
			problems = append(problems, fmt.Sprintf("the password hash of %q is longer than 255 characters", u.Username))
		case password.Damaged(u.Password):
			problems = append(problems, fmt.Sprintf("the password hash of %q is in tokenauth's own format ($argon2id$) but damaged, "+
				"and its logins would fail with an error: give the user an unusable password in Django, or repair the hash", u.Username))
		}
		// Django compares usernames case-sensitively, this service does
		// not: two Django accounts must not become one.
		key := models.UsernameKey(u.Username)
		if other, dup := folded[key]; dup {
			problems = append(problems, fmt.Sprintf("usernames %q and %q are the same here, where case does not count", other, u.Username))
		}
		folded[key] = u.Username
	}
	for _, t := range s.tokens {
		if !users[t.UserID] {
			problems = append(problems, fmt.Sprintf("a token belongs to user id %d, who is not in the user table", t.UserID))
		}
		if !keyFits(kind, t.Key) {
			problems = append(problems, fmt.Sprintf("a token of user id %d has a key that is not %s (is the token kind right?)",
				t.UserID, keyShape(kind)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the Django database cannot be imported as it is; nothing was imported:\n  %s", strings.Join(listed(problems), "\n  "))
	}
	return nil
}

func keyFits(kind, key string) bool {
	if kind == KindAPIToken {
		return len(key) == models.APITokenKeyLength && models.LegacyTokenShape(key)
	}
	return len(key) == models.AuthTokenKeyLength && models.LegacyTokenShape(key)
}

func keyShape(kind string) string {
	if kind == KindAPIToken {
		return "64 lower-case hex characters"
	}
	return "40 hex characters"
}

// importUsers creates the users not imported yet and returns the target
// user id of every Django user id.
func importUsers(tx *gorm.DB, users []djangoUser, now time.Time, report *Report) (map[int64]uint, error) {
	byKey := make(map[string]djangoUser, len(users))
	keys := make([]string, 0, len(users))
	for _, u := range users {
		key := models.UsernameKey(u.Username)
		byKey[key] = u
		keys = append(keys, key)
	}
	existing := map[string]uint{} // username key -> user id
	for start := 0; start < len(keys); start += batchSize {
		var found []models.User
		if err := tx.Select("id", "username_key").Where("username_key IN ?", keys[start:min(start+batchSize, len(keys))]).
			Find(&found).Error; err != nil {
			return nil, fmt.Errorf("looking up existing users: %w", err)
		}
		for _, u := range found {
			existing[u.UsernameKey] = u.ID
		}
	}
	ids := make([]uint, 0, len(existing))
	for _, id := range existing {
		ids = append(ids, id)
	}
	imported := map[uint]bool{}
	for start := 0; start < len(ids); start += batchSize {
		var marked []uint
		if err := tx.Model(&models.ImportedUser{}).Where("user_id IN ?", ids[start:min(start+batchSize, len(ids))]).
			Pluck("user_id", &marked).Error; err != nil {
			return nil, fmt.Errorf("looking up imported users: %w", err)
		}
		for _, id := range marked {
			imported[id] = true
		}
	}

	userIDs := make(map[int64]uint, len(users))
	var conflicts []string
	var fresh []*models.User
	var freshDjangoIDs []int64
	for _, key := range keys {
		u := byKey[key]
		if id, ok := existing[key]; ok {
			if !imported[id] {
				conflicts = append(conflicts, u.Username)
				continue
			}
			userIDs[u.ID] = id
			report.UsersSkipped++
			continue
		}
		scheme, usable := password.ImportedScheme(u.Password)
		report.Passwords[scheme]++
		switch {
		case !usable:
			report.NoPasswordLogin = append(report.NoPasswordLogin, u.Username)
		case password.WeakImported(u.Password):
			report.WeakPasswords = append(report.WeakPasswords, u.Username)
		}
		fresh = append(fresh, &models.User{Username: u.Username, Email: u.Email, PasswordHash: u.Password,
			IsActive: u.IsActive, CreatedAt: u.DateJoined.UTC(), UpdatedAt: now, LastLoginAt: utcPtr(u.LastLogin)})
		freshDjangoIDs = append(freshDjangoIDs, u.ID)
	}
	if len(conflicts) > 0 {
		return nil, fmt.Errorf("nothing was imported: these Django usernames already belong to users of this service "+
			"that were not imported from Django (in any case): %s; rename or remove one of each pair and run the import again",
			strings.Join(listed(conflicts), ", "))
	}
	if len(fresh) == 0 {
		return userIDs, nil
	}
	if err := tx.CreateInBatches(fresh, batchSize).Error; err != nil {
		return nil, fmt.Errorf("creating users: %w", err)
	}
	marks := make([]models.ImportedUser, len(fresh))
	for i, u := range fresh {
		userIDs[freshDjangoIDs[i]] = u.ID
		marks[i] = models.ImportedUser{UserID: u.ID, DjangoID: freshDjangoIDs[i], ImportedAt: now}
	}
	if err := tx.CreateInBatches(marks, batchSize).Error; err != nil {
		return nil, fmt.Errorf("recording imported users: %w", err)
	}
	report.UsersImported = len(fresh)
	return userIDs, nil
}

// importTokens stores the tokens not imported before, hashed, as legacy
// tokens of their users.
func importTokens(tx *gorm.DB, tokens []djangoToken, userIDs map[int64]uint, opts Options, now time.Time, report *Report) error {
	type candidate struct {
		token *models.APIToken
		key   string
	}
	var live []candidate
	for _, t := range tokens {
		if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
			report.TokensExpired++
			continue
		}
		legacy := models.LegacyToken{UserID: userIDs[t.UserID], Key: t.Key, Name: tokenName(opts.TokenKind, t.Name),
			CreatedAt: t.CreatedAt.UTC(), LastUsedAt: utcPtr(t.LastUsedAt), ExpiresAt: utcPtr(t.ExpiresAt)}
		if opts.TokenKind == KindAuthToken || opts.ImportCountsAsUse {
			// Django REST framework records no use. Without one, every
			// token older than TOKEN_IDLE_TIMEOUT would be idle at once;
			// the import counts as its last use instead.
			legacy.LastUsedAt = &now
		}
		tok, err := models.NewLegacyToken(legacy)
		if err != nil {
			return err // check has refused every key of the wrong shape
		}
		live = append(live, candidate{token: tok, key: t.Key})
	}
	hashes := make([]string, len(live))
	for i, c := range live {
		hashes[i] = c.token.KeyHash
	}
	seen, err := existingHashes(tx, &models.ImportedToken{}, hashes)
	if err != nil {
		return fmt.Errorf("looking up imported tokens: %w", err)
	}
	taken, err := existingHashes(tx, &models.APIToken{}, hashes)
	if err != nil {
		return fmt.Errorf("looking up existing tokens: %w", err)
	}
	var fresh []*models.APIToken
	var marks []models.ImportedToken
	perUser := map[uint]int{}
	for _, c := range live {
		switch {
		case seen[c.token.KeyHash]:
			report.TokensSkipped++
			continue
		case taken[c.token.KeyHash]:
			return fmt.Errorf("nothing was imported: a token of this service already has the key of the Django token %s… that was never imported",
				c.key[:8])
		}
		fresh = append(fresh, c.token)
		marks = append(marks, models.ImportedToken{KeyHash: c.token.KeyHash, ImportedAt: now})
		perUser[c.token.UserID]++
		if opts.IdleTimeout > 0 && now.Sub(c.token.LastActive()) >= opts.IdleTimeout {
			report.TokensIdle++
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := tx.CreateInBatches(fresh, batchSize).Error; err != nil {
		return fmt.Errorf("creating tokens: %w", err)
	}
	if err := tx.CreateInBatches(marks, batchSize).Error; err != nil {
		return fmt.Errorf("recording imported tokens: %w", err)
	}
	report.TokensImported = len(fresh)
	for _, n := range perUser {
		if opts.MaxTokensPerUser > 0 && n > opts.MaxTokensPerUser {
			report.UsersOverTokenLimit++
		}
	}
	return nil
}

// existingHashes returns which of the key hashes model's table holds.
func existingHashes(tx *gorm.DB, model any, hashes []string) (map[string]bool, error) {
	found := map[string]bool{}
	for start := 0; start < len(hashes); start += batchSize {
		var got []string
		if err := tx.Model(model).Where("key_hash IN ?", hashes[start:min(start+batchSize, len(hashes))]).
			Pluck("key_hash", &got).Error; err != nil {
			return nil, err
		}
		for _, h := range got {
			found[h] = true
		}
	}
	return found, nil
}

// tokenName is the name an imported token gets: its Django name, cut to
// the length this service allows.
func tokenName(kind, name string) string {
	if kind == KindAuthToken {
		return authTokenName
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return unnamedAPIToken
	}
	if utf8.RuneCountInString(name) > models.TokenNameMaxLength {
		name = string([]rune(name)[:models.TokenNameMaxLength])
	}
	return name
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// listed returns at most maxListed items, then how many more there are.
func listed(items []string) []string {
	if len(items) <= maxListed {
		return items
	}
	return append(items[:maxListed:maxListed], fmt.Sprintf("and %d more", len(items)-maxListed))
}
