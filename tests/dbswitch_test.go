package tests

import (
	"context"
	"database/sql"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
)

// WithDatabaseSwitch lets the test take the database away from the service
// and give it back (Server.StopDatabase, Server.StartDatabase).
//
// On PostgreSQL the service reaches the server through a TCP proxy of the
// test's own: stopping it cuts every open connection and refuses new ones,
// as a server that went down does. SQLite has no server to lose; there the
// service's statements go through a gate that, while stopped, sends them to
// a closed database handle, so they fail with database/sql's own error.
func WithDatabaseSwitch() Option {
	return func(s *serverSetup) { s.dbSwitch = true }
}

// StopDatabase makes the database unreachable for the service.
func (s *Server) StopDatabase(t testing.TB) {
	t.Helper()
	if s.dbSwitch == nil {
		t.Fatal("StopDatabase needs NewServer(t, WithDatabaseSwitch())")
	}
	s.dbSwitch.stop()
}

// StartDatabase makes the database reachable again.
func (s *Server) StartDatabase(t testing.TB) {
	t.Helper()
	if s.dbSwitch == nil {
		t.Fatal("StartDatabase needs NewServer(t, WithDatabaseSwitch())")
	}
	if err := s.dbSwitch.start(); err != nil {
		t.Fatalf("bringing the database back: %v", err)
	}
}

type databaseSwitch struct {
	stop  func()
	start func() error
}

// newProxySwitch points *databaseURL at a proxy in front of its server.
func newProxySwitch(t testing.TB, databaseURL *string) *databaseSwitch {
	t.Helper()
	u, err := url.Parse(*databaseURL)
	if err != nil {
		t.Fatalf("parsing the database URL: %v", err)
	}
	p := &tcpProxy{target: u.Host, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting the database proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	u.Host = p.addr
	*databaseURL = u.String()
	return &databaseSwitch{stop: p.stop, start: p.start}
}

// tcpProxy forwards connections on addr to target while it runs.
type tcpProxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func (p *tcpProxy) start() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			if !p.track(client, server) {
				continue
			}
			go p.pipe(client, server)
			go p.pipe(server, client)
		}
	}()
}

// track registers a connection pair, or closes it when the proxy stopped
// in the meantime.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// newGateSwitch routes db's statements through a gate.
func newGateSwitch(t testing.TB, db *gorm.DB) *databaseSwitch {
	t.Helper()
	real, err := db.DB()
	if err != nil {
		t.Fatalf("getting the database handle: %v", err)
	}
	closed, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatalf("opening a database handle to close: %v", err)
	}
	closed.Close()
	g := &gate{real: real, closed: closed}
	g.target.Store(real)
	db.ConnPool = g
	db.Statement.ConnPool = g
	return &databaseSwitch{
		stop:  func() { g.target.Store(g.closed) },
		start: func() error { g.target.Store(g.real); return nil },
	}
}

// gate is a gorm.ConnPool that sends everything to the real database, or
// to a closed handle while the database is stopped.
type gate struct {
	real, closed *sql.DB
	target       atomic.Pointer[sql.DB]
}

func (g *gate) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return g.target.Load().PrepareContext(ctx, query)
}

func (g *gate) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return g.target.Load().ExecContext(ctx, query, args...)
}

func (g *gate) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return g.target.Load().QueryContext(ctx, query, args...)
}

func (g *gate) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return g.target.Load().QueryRowContext(ctx, query, args...)
}

// BeginTx lets gorm open transactions through the gate.
func (g *gate) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return g.target.Load().BeginTx(ctx, opts)
}

// GetDBConn is how gorm's DB() finds the handle, which /readyz pings.
func (g *gate) GetDBConn() (*sql.DB, error) { return g.target.Load(), nil }
