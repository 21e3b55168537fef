package config

import (
	"context"
	"fmt"
	"net/url"
	"strings"
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

// Database is an open database: GORM over it and, on PostgreSQL, the pgx
// pool under GORM, which the token lookup uses directly (see
// models.FindTokenByHash).
type Database struct {
	ORM *gorm.DB
	// Pool is nil on SQLite.
	Pool *pgxpool.Pool
}

// Close closes the database (on PostgreSQL, the pool with it).
func (d *Database) Close() error {
	sqlDB, err := d.ORM.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
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
		return nil, fmt.Errorf("opening SQLite file %s: %w", databaseURL, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	return &Database{ORM: db}, nil
}

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
