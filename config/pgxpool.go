package config

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgxConns is the connection pool of a PostgreSQL database: a pgx pool,
// with database/sql on top of it for GORM. The two share the pool's 32
// connections, and closing the sql.DB (as every user of gorm's DB() does)
// closes the pool too. That waits until every borrowed connection is back:
// after the HTTP server has stopped, at most REQUEST_TIMEOUT.
//
// The token lookup, the query of every request the token cache does not
// answer, runs on the pgx pool directly (Database.Pool): borrowing a
// connection through database/sql costs more than an acquire from the pool
// (docs/BENCHMARKS.md).
type pgxConns struct {
	*sql.DB
	pool *pgxpool.Pool
}

// GetDBConn is how gorm's DB() finds the sql.DB.
func (c *pgxConns) GetDBConn() (*sql.DB, error) { return c.DB, nil }

func openPgxPool(databaseURL string) (*pgxConns, error) {
	cfg, err := pgxpool.ParseConfig(withConnectTimeout(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("reading the PostgreSQL URL: %w", err)
	}
	cfg.MaxConns = 32
	cfg.MaxConnIdleTime = 5 * time.Minute
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL: %w", err)
	}
	// As stdlib.OpenDBFromPool: database/sql keeps no idle connections of
	// its own, which would starve the pool's direct users.
	db := sql.OpenDB(closingConnector{Connector: stdlib.GetPoolConnector(pool), pool: pool})
	db.SetMaxIdleConns(0)
	return &pgxConns{DB: db, pool: pool}, nil
}

// closingConnector closes the pool when database/sql closes the sql.DB.
type closingConnector struct {
	driver.Connector
	pool *pgxpool.Pool
}

func (c closingConnector) Close() error {
	c.pool.Close()
	return nil
}
