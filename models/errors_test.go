package models

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SQLite's errors reach translate as the driver's, with their result
// codes: a file that is locked by another writer or cannot grow, or a
// statement cut off by the deadline, is an outage; a broken statement is
// not.
func TestTranslateSQLiteErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	open := func() *gorm.DB {
		t.Helper()
		db, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(0)"), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1)
		t.Cleanup(func() { sqlDB.Close() })
		return db
	}
	db, other := open(), open()
	if err := db.Exec("CREATE TABLE t (b BLOB)").Error; err != nil {
		t.Fatal(err)
	}

	// Another connection holds the write lock.
	tx := other.Begin()
	if err := tx.Exec("INSERT INTO t VALUES (x'00')").Error; err != nil {
		t.Fatal(err)
	}
	locked := db.Exec("INSERT INTO t VALUES (x'01')").Error
	tx.Rollback()

	// The file may not grow by another page.
	var pages int
	if err := db.Raw("PRAGMA page_count").Scan(&pages).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)).Error; err != nil {
		t.Fatal(err)
	}
	full := db.Exec("INSERT INTO t VALUES (zeroblob(1048576))").Error

	// A statement still running when the request's deadline passes (it
	// would take seconds): the driver interrupts it.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	interrupted := db.WithContext(ctx).Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c " +
		"LIMIT 30000000) SELECT count(*) FROM c").Error

	broken := db.Exec("INSERT INTO no_such_table VALUES (1)").Error

	for _, tc := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"locked by another writer", locked, true},
		{"full", full, true},
		{"interrupted at the deadline", interrupted, true},
		{"no such table", broken, false},
	} {
		if tc.err == nil {
			t.Errorf("%s: the statement succeeded", tc.name)
			continue
		}
		if got := errors.Is(translate(tc.err), ErrUnavailable); got != tc.outage {
			t.Errorf("%s (%v): unavailable %v, want %v", tc.name, tc.err, got, tc.outage)
		}
	}
}

// PostgreSQL's data exceptions (SQLSTATE class 22) are the client's
// values, refused: ErrInvalidData, whose message names the SQLSTATE and
// nothing of the value. Other classes keep their meaning.
func TestTranslateDataExceptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code        string
		invalidData bool
	}{
		{"22021", true}, // a NUL, or bytes that are not UTF-8
		{"22001", true}, // text longer than its column
		{"22P02", true}, // text that is not a number
		{"23505", false},
		{"42601", false},
	} {
		// As GORM hands it over: wrapped.
		err := fmt.Errorf("query failed: %w", &pgconn.PgError{Code: tc.code, Message: `invalid input: "hunter2"`})
		got := translate(err)
		if errors.Is(got, ErrInvalidData) != tc.invalidData {
			t.Errorf("%s: got %v, want ErrInvalidData %v", tc.code, got, tc.invalidData)
		}
		if tc.invalidData && (strings.Contains(got.Error(), "hunter2") || !strings.Contains(got.Error(), tc.code)) {
			t.Errorf("%s: %q should name the SQLSTATE and not quote the value", tc.code, got)
		}
	}
	if got := translate(&pgconn.PgError{Code: "08006"}); !errors.Is(got, ErrUnavailable) {
		t.Errorf("08006: got %v, want ErrUnavailable", got)
	}
}
