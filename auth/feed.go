package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"tokenauth/config"
	"tokenauth/models"
)

// How changes made by other processes are followed. On PostgreSQL they are
// announced (see models.InstallChangeNotifications) on a connection that
// listens; a connection that died silently (a network partition) would miss
// announcements without noticing, so when nothing arrives for
// listenHeartbeat the feed pings, and gives up on the connection after
// listenPingTimeout. A ping that comes back proves that every announcement
// committed before it was sent has arrived: PostgreSQL delivers pending
// notifications before it answers. On SQLite, other processes (the operator
// subcommands) write the same file, and the feed watches it (sqliteWatch):
// before every request that the cache may answer, and every sqlitePoll.
const (
	listenHeartbeat   = 2 * time.Second
	listenPingTimeout = 2 * time.Second
	reconnectMin      = 100 * time.Millisecond
	reconnectMax      = 5 * time.Second
	sqlitePoll        = time.Second
)

// listenerName is the application_name of the listening connection, so
// that an operator can tell it apart in pg_stat_activity.
const listenerName = "tokenauth listener"

// ChangeFeed keeps a Resolver's cache in step with the changes that other
// processes commit, and keeps the cache off whenever it cannot.
type ChangeFeed struct {
	resolver *Resolver
	log      *slog.Logger
	postgres bool
	sqlite   *sqliteWatch // nil on PostgreSQL
	// Connect opens the connection that listens (PostgreSQL only). It is
	// set from the database URL; a test may wrap it to hold a reconnection
	// back.
	Connect func(ctx context.Context) (*pgx.Conn, error)
}

// NewChangeFeed returns the feed for the database at databaseURL, which db
// is open on. On SQLite, walIndex is the file's WAL index
// (config.Database.WALIndex), or nil when it has none: every request the
// cache may answer then asks the database whether another connection
// committed. The feed has r check for changes before it trusts its cache.
func NewChangeFeed(r *Resolver, db *gorm.DB, databaseURL string, walIndex *os.File, log *slog.Logger) *ChangeFeed {
	f := &ChangeFeed{resolver: r, log: log, postgres: config.IsPostgres(databaseURL)}
	if f.postgres {
		f.Connect = func(ctx context.Context) (*pgx.Conn, error) {
			cfg, err := pgx.ParseConfig(databaseURL)
			if err != nil {
				return nil, err
			}
			if cfg.ConnectTimeout == 0 {
				cfg.ConnectTimeout = 3 * time.Second
			}
			cfg.RuntimeParams["application_name"] = listenerName
			return pgx.ConnectConfig(ctx, cfg)
		}
	} else {
		f.sqlite = &sqliteWatch{resolver: r, db: db, log: log, walIndex: walIndex}
		r.catchUp = f.sqlite.catchUp
	}
	return f
}

// StalenessBound is the longest a change committed by another process can
// go unseen by this process's cache: after it, the change has been applied
// or the cache is off. On PostgreSQL an announcement arrives within
// milliseconds in practice; the bound is for a connection that died
// without a word. On SQLite it is zero: a request that began after the
// change committed sees it.
func (f *ChangeFeed) StalenessBound() time.Duration {
	if f.postgres {
		return listenHeartbeat + listenPingTimeout
	}
	return 0
}

// Run follows changes until ctx ends. The cache is on only while they are
// followed. With the cache switched off by configuration it returns at
// once.
func (f *ChangeFeed) Run(ctx context.Context) {
	if f.resolver.cache == nil {
		return
	}
	defer f.resolver.setCaching(false)
	if f.postgres {
		f.listen(ctx)
	} else {
		f.poll(ctx)
	}
}

// listen keeps a listening connection, and reconnects with a growing delay
// when it fails.
func (f *ChangeFeed) listen(ctx context.Context) {
	delay := reconnectMin
	for ctx.Err() == nil {
		listened, err := f.listenOnce(ctx)
		f.resolver.setCaching(false)
		if ctx.Err() != nil {
			return
		}
		if listened {
			delay = reconnectMin
		}
		f.log.Warn("token cache off: changes made by other instances cannot be followed; reconnecting",
			"error", err.Error(), "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, reconnectMax)
	}
}

// listenOnce connects, listens, switches the cache on and applies every
// announcement until the connection fails. listened tells whether it got
// as far as listening.
func (f *ChangeFeed) listenOnce(ctx context.Context) (listened bool, err error) {
	conn, err := f.Connect(ctx)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(closeCtx)
		cancel()
	}()
	var channel string
	if err := conn.QueryRow(ctx, models.ChangeChannelQuery).Scan(&channel); err != nil {
		return false, fmt.Errorf("naming the channel: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listening: %w", err)
	}
	f.resolver.setCaching(true)
	f.log.Info("token cache on: following changes", "channel", channel)
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenHeartbeat)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			f.apply(n.Payload)
			continue
		case ctx.Err() != nil:
			return true, ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err):
			return true, err
		}
		pingCtx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return true, fmt.Errorf("heartbeat: %w", err)
		}
	}
}

func (f *ChangeFeed) apply(payload string) {
	ch, err := models.ParseChange(payload)
	if err != nil {
		// Not ours to read: assume the worst.
		f.log.Warn("unreadable change announcement; dropping the token cache", "payload", payload)
		ch = models.Change{All: true}
	}
	f.resolver.Apply(ch)
}

// poll checks the SQLite file every sqlitePoll whatever its WAL index
// says: that switches the cache on, and back on after the file could not
// be read.
func (f *ChangeFeed) poll(ctx context.Context) {
	defer f.sqlite.stop()
	ticker := time.NewTicker(sqlitePoll)
	defer ticker.Stop()
	for {
		if f.sqlite.check(ctx, true) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
