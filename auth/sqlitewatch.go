package auth

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"tokenauth/models"
)

// sqliteWatch follows the commits that other processes (the operator
// subcommands, another instance) make to a SQLite file, so that the next
// request sees them.
//
// PRAGMA data_version, asked on the service's own connection, changes when
// another connection has committed; the service's own commits do not
// count. But asking it is a query on the service's one connection (about
// 10 µs, and requests would queue for that connection): too much for every
// request. The header of the WAL index (the file's "-shm" companion,
// https://www.sqlite.org/walformat.html) changes with every commit of any
// connection, the service's own included, and reading it costs one pread
// (about 0.5 µs, no allocation). So a request that the cache may answer
// reads the header first, and only when it moved asks data_version whether
// the commit was another's. What another process changed is not known, so
// its commits drop the whole cache. docs/BENCHMARKS.md has the measurements
// of these and of the other ways considered.
type sqliteWatch struct {
	resolver *Resolver
	db       *gorm.DB
	log      *slog.Logger
	// walIndex is the file's WAL index; nil when it has none, and then
	// every check asks data_version.
	walIndex *os.File

	// seen is the header as it was read before the last data_version
	// applied; nil while changes are not followed (the cache is off).
	seen atomic.Pointer[walIndexHeader]
	// mu makes the checks that ask data_version take turns; version is the
	// last answer.
	mu      sync.Mutex
	version int64
}

// walIndexHeader is the first copy of the WAL index header, which a writer
// updates last, once its commit is complete.
type walIndexHeader [48]byte

// catchUp applies what other connections committed since the last check.
// It runs before a request may be answered from the cache, so a change
// committed before the request began is in force for it. It fails only
// when ctx ends while it waits for the database.
func (w *sqliteWatch) catchUp(ctx context.Context) error {
	seen := w.seen.Load()
	if seen == nil {
		return nil // not following: the cache is off
	}
	var h walIndexHeader
	if w.readHeader(&h) && h == *seen {
		return nil
	}
	return w.check(ctx, false)
}

// check asks data_version and drops the cache when another connection has
// committed. Unless forced, it leaves it when another check has meanwhile
// seen the header as it is now. Not following yet, it starts (the cache
// comes on); when the database cannot be read, it stops (the cache goes
// off) until a forced check succeeds. It fails only when ctx ends.
func (w *sqliteWatch) check(ctx context.Context, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen.Load()
	// Read before data_version, so that a commit landing between the two
	// moves the header past what is stored as seen, and is checked again.
	var h walIndexHeader
	readable := w.readHeader(&h)
	if !force && (seen == nil || readable && h == *seen) {
		return nil
	}
	if !readable {
		h = walIndexHeader{} // no header reads as all zeros: the next check asks again
	}
	version, err := w.dataVersion(ctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		if seen != nil {
			w.log.Warn("token cache off: cannot watch the database for changes", "error", err.Error())
		}
		// Off before not following: a request that skips the check finds
		// nothing cached.
		w.resolver.setCaching(false)
		w.seen.Store(nil)
		return nil
	case seen == nil:
		// Following before on: until the cache is on, nothing is cached.
		w.version = version
		w.seen.Store(&h)
		w.resolver.setCaching(true)
		return nil
	case version != w.version:
		w.resolver.Apply(models.Change{All: true})
	}
	w.version = version
	w.seen.Store(&h)
	return nil
}

// stop ends the watch: the cache goes off, and requests stop checking.
func (w *sqliteWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.resolver.setCaching(false)
	w.seen.Store(nil)
}

// dataVersion asks PRAGMA data_version on the service's connection. It
// goes through database/sql, not GORM: it runs on the first request after
// every write of the service's own, and GORM's callbacks would more than
// double its cost.
func (w *sqliteWatch) dataVersion(ctx context.Context) (int64, error) {
	conns, err := w.db.DB()
	if err != nil {
		return 0, err
	}
	var version int64
	err = conns.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version)
	return version, err
}

// readHeader reads the WAL index header into h, and tells whether it could.
func (w *sqliteWatch) readHeader(h *walIndexHeader) bool {
	if w.walIndex == nil {
		return false
	}
	n, err := w.walIndex.ReadAt(h[:], 0)
	return n == len(h) && (err == nil || err == io.EOF)
}
