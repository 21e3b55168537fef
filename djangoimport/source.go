package djangoimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"tokenauth/config"
)

// djangoUser is a row of Django's user table.
type djangoUser struct {
	ID         int64
	Username   string
	Email      string
	Password   string
	IsActive   bool
	DateJoined time.Time
	LastLogin  *time.Time
}

// djangoToken is a row of a token table: an APIToken, or an authtoken
// (which has no name, last use or expiry).
type djangoToken struct {
	UserID     int64
	Key        string
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
}

// source is what the import reads from the Django database.
type source struct {
	users  []djangoUser
	tokens []djangoToken
}

// identifier is a table name, optionally with its schema: it is quoted
// into SQL, so nothing else gets through.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// openSource opens the Django database for reading only. A SQLite file is
// opened read-only (and must exist), so the import cannot change it.
func openSource(dsn string) (*gorm.DB, error) {
	if config.IsPostgres(dsn) {
		db, err := config.OpenDatabase(dsn)
		if err != nil {
			return nil, fmt.Errorf("opening the Django database: %w", err)
		}
		return db.ORM, nil
	}
	if _, err := os.Stat(dsn); err != nil {
		return nil, fmt.Errorf("opening the Django database: %w", err)
	}
	db, err := gorm.Open(sqlite.Open("file:"+dsn+"?mode=ro&_pragma=busy_timeout(5000)"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("opening the Django database %s: %w", dsn, err)
	}
	return db, nil
}

// readSource reads every user and token in one read-only transaction, so
// that users and tokens come from the same moment of a live database.
func readSource(ctx context.Context, db *gorm.DB, opts Options) (*source, error) {
	txOpts := &sql.TxOptions{}
	if db.Name() == "postgres" {
		txOpts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	src := &source{}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Column names stay unquoted: SQLite reads an unknown "quoted" name
		// as a string literal, which would hide a wrong table.
		err := tx.Raw(`SELECT id, username, email, password, is_active, date_joined, last_login FROM ? ORDER BY id`,
			clause.Table{Name: opts.UserTable}).Scan(&src.users).Error
		if err != nil {
			return fmt.Errorf("reading Django users from table %s: %w", opts.UserTable, err)
		}
		var q string
		switch opts.TokenKind {
		case KindAPIToken:
			q = `SELECT user_id, key, name, created_at, last_used_at, expires_at FROM ? ORDER BY id`
		case KindAuthToken:
			q = `SELECT user_id, key, created AS created_at FROM ? ORDER BY created, key`
		}
		if err := tx.Raw(q, clause.Table{Name: opts.TokenTable}).Scan(&src.tokens).Error; err != nil {
			return fmt.Errorf("reading Django %s tokens from table %s: %w", opts.TokenKind, opts.TokenTable, err)
		}
		return nil
	}, txOpts)
	if err != nil {
		return nil, err
	}
	if len(src.users) == 0 {
		return nil, errors.New("the Django database has no users: is this the right database and user table?")
	}
	return src, nil
}

func closeSource(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		_ = sqlDB.Close()
	}
}
