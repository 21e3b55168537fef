// Package models holds the GORM models of tokenauth and their domain logic:
// users, API tokens and their secrets, scopes, security events, the links
// sent by mail and the outbox they wait in, and the example resource.
//
// Functions take the database handle first after ctx. They read the time
// from it (see nowOf), and every write that can make a remembered token
// lookup wrong announces itself through it once committed (see commit and
// ListenForChanges). Errors leave as the ones declared here: no gorm or
// driver error leaves this package unwrapped.
package models

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors the models report. Controllers turn them into HTTP responses; no
// gorm or driver error leaves this package unwrapped.
var (
	ErrNotFound           = errors.New("not found")
	ErrConflict           = errors.New("conflict")
	ErrUnavailable        = errors.New("database unavailable")
	ErrTokenLimit         = errors.New("token limit reached")
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrAccountDisabled    = errors.New("account disabled")
	// ErrInvalidData is a value the database refused to take (PostgreSQL's
	// data exceptions, SQLSTATE class 22: text that is not UTF-8 or holds a
	// NUL, a value too long for its column, ...). The checks at the edges
	// keep such values out; one that still gets through is the client's
	// input, not the service failing.
	ErrInvalidData = errors.New("the database refused a value")
)

// ValidationError reports input that breaks a rule of the domain, field by
// field (the keys are the JSON names clients sent).
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for field, msg := range e.Fields {
		parts = append(parts, field+": "+msg)
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

// invalid builds a ValidationError for one field.
func invalid(field, msg string) error {
	return &ValidationError{Fields: map[string]string{field: msg}}
}

// translate turns a gorm or driver error into one of the errors above,
// keeping the original for the logs. A database that cannot be reached is
// ErrUnavailable, never ErrNotFound.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return ErrConflict
	case isOutage(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		// Only the SQLSTATE goes on, for the logs: the driver's message can
		// quote the value, which may be a password typed into the wrong
		// field.
		return fmt.Errorf("%w (SQLSTATE %s)", ErrInvalidData, pgErr.Code)
	}
	return err
}

// isOutage tells whether err means the database could not be reached or
// could not answer in time, rather than that the query was wrong.
func isOutage(err error) bool {
	var (
		connectErr *pgconn.ConnectError
		netErr     net.Error
		pgErr      *pgconn.PgError
		sqliteErr  *sqlite.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.As(err, &connectErr),
		errors.As(err, &netErr),
		pgconn.Timeout(err),
		pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pgErr):
		// Class 08 is connection exceptions, 53 insufficient resources,
		// 57P0x the server shutting down.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			strings.HasPrefix(pgErr.Code, "57P")
	case errors.As(err, &sqliteErr):
		// The driver reports extended result codes; the primary one is the
		// low byte. The database file is locked by another writer,
		// read-only, failing to read or write, full, or cannot be opened,
		// or the statement was interrupted because the request's deadline
		// passed. A corrupt file or a broken statement stays a 500.
		switch sqliteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_INTERRUPT:
			return true
		}
	}
	msg := err.Error()
	// pgx says "closed pool" when the application is shutting down.
	return strings.Contains(msg, "closed pool") || strings.Contains(msg, "sql: database is closed")
}
