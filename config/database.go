package config

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"tokenauth/models"
)

// IsPostgres tells whether a database URL selects PostgreSQL; anything else
// is the path of a SQLite file.
func IsPostgres(databaseURL string) bool {
	return strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://")
}

// urlScheme matches the scheme of a URL, which no SQLite path this service
// opens starts with.
var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// checkDatabaseURL checks DATABASE_URL before anything is opened or
// created: a postgres:// URL that PostgreSQL's driver can read, or the
// path of a SQLite file in a folder that exists. Errors never repeat the
// URL, which may hold a password.
func checkDatabaseURL(databaseURL string) error {
	if IsPostgres(databaseURL) {
		if _, err := pgxpool.ParseConfig(databaseURL); err != nil {
			// pgx's own message shows the URL with its password masked.
			return fmt.Errorf("DATABASE_URL: not a PostgreSQL URL that can be read: %w", err)
		}
		return nil
	}
	if m := urlScheme.FindStringSubmatch(databaseURL); m != nil {
		return fmt.Errorf("DATABASE_URL: %s:// is no database this service knows: give a postgres:// (or postgresql://) URL, or the path of a SQLite file", m[1])
	}
	if info, err := os.Stat(databaseURL); err == nil && info.IsDir() {
		return fmt.Errorf("DATABASE_URL: %s is a folder; give the path of a SQLite file (in it: %s)", databaseURL,
			filepath.Join(databaseURL, "tokenauth.db"))
	}
	dir := filepath.Dir(databaseURL)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("DATABASE_URL: the folder %s of the SQLite file %s does not exist (the file is created, its folder is not)", dir, databaseURL)
	case err != nil:
		return fmt.Errorf("DATABASE_URL: the folder of the SQLite file %s cannot be read: %w", databaseURL, err)
	case !info.IsDir():
		return fmt.Errorf("DATABASE_URL: %s, where the SQLite file %s would go, is not a folder", dir, databaseURL)
	}
	return nil
}

// DescribeDatabase names the database a URL selects, for the start-up
// log: PostgreSQL's URL with its password masked, or the SQLite file's
// full path.
func DescribeDatabase(databaseURL string) string {
	if !IsPostgres(databaseURL) {
		if abs, err := filepath.Abs(databaseURL); err == nil {
			databaseURL = abs
		}
		return "SQLite " + databaseURL
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "PostgreSQL (an unreadable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return "PostgreSQL " + u.Redacted()
}

// Database is an open database: GORM over it and, on PostgreSQL, the pgx
// pool under GORM, which the token lookup uses directly (see
// models.FindTokenByHash).
type Database struct {
	ORM *gorm.DB
	// Pool is nil on SQLite.
	Pool *pgxpool.Pool

	// sqlitePath is the SQLite file ("" on PostgreSQL); walIndex is its
	// WAL index, once WALIndex has opened it.
	sqlitePath string
	walMu      sync.Mutex
	walIndex   *os.File
}

// Close closes the database (on PostgreSQL, the pool with it).
func (d *Database) Close() error {
	sqlDB, err := d.ORM.DB()
	if err != nil {
		return err
	}
	err = sqlDB.Close()
	// Only after the connection: closing any descriptor of a file drops
	// every POSIX lock this process holds on it, and SQLite keeps the
	// locks of its WAL on that file.
	d.walMu.Lock()
	defer d.walMu.Unlock()
	if d.walIndex != nil {
		_ = d.walIndex.Close() // opened read-only: nothing to lose
		d.walIndex = nil
	}
	return err
}

// WALIndex returns the WAL index of a SQLite database (the file's "-shm"
// companion), open for reading until Close; nil on PostgreSQL. The header
// at its start changes with every commit of every connection
// (https://www.sqlite.org/walformat.html), so reading it tells whether
// anyone may have committed since it was last read, without a query.
// There is none to open while the file is not in WAL mode, or before the
// database has been used (Migrate uses it).
func (d *Database) WALIndex() (*os.File, error) {
	if d.sqlitePath == "" {
		return nil, nil
	}
	d.walMu.Lock()
	defer d.walMu.Unlock()
	if d.walIndex == nil {
		f, err := os.Open(d.sqlitePath + "-shm")
		if err != nil {
			return nil, fmt.Errorf("opening the WAL index of %s: %w", d.sqlitePath, err)
		}
		d.walIndex = f
	}
	return d.walIndex, nil
}

// OpenDatabase opens the database the URL names. Errors from both drivers
// are translated by GORM (TranslateError), so a duplicate key is
// gorm.ErrDuplicatedKey on either. Times are stored in UTC.
func OpenDatabase(databaseURL string) (*Database, error) {
	gcfg := &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	if IsPostgres(databaseURL) {
		conns, err := openPgxPool(databaseURL)
		if err != nil {
			return nil, err
		}
		db, err := gorm.Open(postgres.New(postgres.Config{Conn: conns}), gcfg)
		if err != nil {
			_ = conns.Close()
			return nil, fmt.Errorf("opening PostgreSQL: %w", err)
		}
		return &Database{ORM: db, Pool: conns.pool}, nil
	}
	// One connection: SQLite allows one writer at a time anyway, and a single
	// connection turns what would be "database is locked" errors between
	// our own goroutines into an orderly queue. busy_timeout covers other
	// processes (the operator subcommands) writing the same file.
	dsn := "file:" + databaseURL + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), gcfg)
	if err != nil {
		var sqliteErr interface{ Code() int }
		if errors.As(err, &sqliteErr) && sqliteErr.Code() == sqliteCantOpen {
			// SQLite's text for this code can be "out of memory", which
			// sends one looking in the wrong place.
			return nil, fmt.Errorf("cannot open or create the SQLite file %s: is its folder there, and writable?", databaseURL)
		}
		return nil, fmt.Errorf("opening SQLite file %s: %w", databaseURL, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	return &Database{ORM: db, sqlitePath: databaseURL}, nil
}

// sqliteCantOpen is SQLITE_CANTOPEN, the code SQLite answers when it
// cannot open or create the file.
const sqliteCantOpen = 14

// withConnectTimeout adds a connect timeout to a PostgreSQL URL that has
// none, so an unreachable server fails requests fast instead of hanging.
func withConnectTimeout(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return databaseURL
	}
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", "3")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Migrate creates or updates the schema of every model in models.All, the
// server's secret key on first run (see package keyring) and, on
// PostgreSQL, the triggers that announce changes to other instances'
// token caches.
func Migrate(db *gorm.DB) error {
	if err := db.AutoMigrate(models.All()...); err != nil {
		return fmt.Errorf("migrating the schema: %w", err)
	}
	if err := models.BackfillEmailKeys(context.Background(), db); err != nil {
		return fmt.Errorf("filling in folded email addresses: %w", err)
	}
	if err := models.EnsureSecretKey(context.Background(), db); err != nil {
		return fmt.Errorf("storing the secret key: %w", err)
	}
	if db.Dialector.Name() == "postgres" {
		return models.InstallChangeNotifications(context.Background(), db)
	}
	return nil
}
