package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/pgembed"
)

// PostgresAppRole is the role every test database is owned by and URL
// connects as. It is neither superuser nor BYPASSRLS, so row-level security
// applies to it exactly as to registryd in production.
const PostgresAppRole = "extedge"

// PostgresServer is one fresh database on a PostgreSQL server started from
// the system's binaries (see internal/pgembed).
type PostgresServer struct {
	// Database is this caller's database name.
	Database string

	t      testing.TB
	srv    *pgembed.Server
	shared bool
}

// URL connects as PostgresAppRole to this caller's database over the
// server's Unix socket.
func (p *PostgresServer) URL() string { return p.srv.URL(PostgresAppRole, p.Database) }

// SuperuserURL connects as the bootstrap superuser (bypasses RLS): for test
// setup and inspection only.
func (p *PostgresServer) SuperuserURL() string { return p.srv.URL(pgembed.Superuser, p.Database) }

// NewDatabase creates another empty database on the same server, owned by
// PostgresAppRole, and returns its URL.
func (p *PostgresServer) NewDatabase(t testing.TB) string {
	t.Helper()
	name := newDatabase(t, p.srv)
	return p.srv.URL(PostgresAppRole, name)
}

// Stop shuts the server down (fast shutdown), keeping its data. Only for
// servers from PrivatePostgres.
func (p *PostgresServer) Stop() {
	p.t.Helper()
	if p.shared {
		p.t.Fatalf("testenv: Stop on a shared Postgres server; use testenv.PrivatePostgres(t) for fault tests")
	}
	p.srv.Stop()
}

// Start brings a stopped server back on the same socket and data. Only for
// servers from PrivatePostgres.
func (p *PostgresServer) Start() {
	p.t.Helper()
	if p.shared {
		p.t.Fatalf("testenv: Start on a shared Postgres server; use testenv.PrivatePostgres(t) for fault tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.srv.Restart(ctx); err != nil {
		p.t.Fatalf("testenv: restarting postgres: %v", err)
	}
}

var (
	sharedPGOnce sync.Once
	sharedPG     *pgembed.Server
	sharedPGErr  error
	dbCounter    atomic.Int64
)

// Postgres returns a fresh database, owned by PostgresAppRole, on one
// PostgreSQL server shared by every test in the binary (started on first
// use, stopped by Main). The database is dropped when t ends. A package
// without `func TestMain(m *testing.M) { testenv.Main(m) }` gets a private
// server per call instead. Shared servers cannot be stopped; fault tests use
// PrivatePostgres.
//
// The binaries come from PATH or /usr/lib/postgresql/*/bin; when missing
// the test fails unless EXTEDGE_SKIP_POSTGRES is set.
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	requirePostgres(t)
	if !mainActive.Load() {
		return PrivatePostgres(t)
	}
	sharedPGOnce.Do(func() {
		dir, err := os.MkdirTemp("", "extedge-pg-")
		if err != nil {
			sharedPGErr = err
			return
		}
		srv, err := startPostgres(dir)
		if err != nil {
			os.RemoveAll(dir)
			sharedPGErr = err
			return
		}
		sharedPG = srv
		registerShared(func() {
			srv.Stop()
			os.RemoveAll(dir)
		})
	})
	if sharedPGErr != nil {
		t.Fatalf("testenv: starting shared postgres: %v", sharedPGErr)
	}
	name := newDatabase(t, sharedPG)
	return &PostgresServer{Database: name, t: t, srv: sharedPG, shared: true}
}

// PrivatePostgres starts a PostgreSQL server for t alone (about a second
// on a warm disk), with one fresh database, and stops it when t ends. Its
// Stop and Start simulate database outages.
func PrivatePostgres(t testing.TB) *PostgresServer {
	t.Helper()
	requirePostgres(t)
	// Not t.TempDir: its parents are mode 0700, which the postgres user
	// (when tests run as root) cannot traverse.
	dir, err := os.MkdirTemp("", "extedge-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	srv, err := startPostgres(dir)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("testenv: starting postgres: %v", err)
	}
	t.Cleanup(func() {
		srv.Stop()
		os.RemoveAll(dir)
	})
	name := newDatabase(t, srv)
	return &PostgresServer{Database: name, t: t, srv: srv}
}

func requirePostgres(t testing.TB) {
	t.Helper()
	requireBinary(t, func() (string, error) { return pgembed.FindBinDir() },
		"EXTEDGE_SKIP_POSTGRES", "apt-get install postgresql")
}

func startPostgres(dir string) (*pgembed.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgembed.Start(ctx, pgembed.Options{Dir: dir, Fast: true})
	if err != nil {
		return nil, err
	}
	if err := srv.EnsureRole(ctx, PostgresAppRole); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

// newDatabase creates a database owned by the app role and drops it when t ends.
func newDatabase(t testing.TB, srv *pgembed.Server) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.EnsureDatabase(ctx, name, PostgresAppRole); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if !srv.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.DropDatabase(ctx, name)
	})
	return name
}
