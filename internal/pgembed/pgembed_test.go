package pgembed

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartStopRestart proves the lifecycle: initdb on first use, a role
// without superuser rights, data surviving a clean stop and restart, and a
// second Start on the same directory attaching instead of starting twice.
func TestStartStopRestart(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		if os.Getenv("EXTEDGE_SKIP_POSTGRES") != "" {
			t.Skipf("%v (EXTEDGE_SKIP_POSTGRES set)", err)
		}
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !s.Owned() {
		t.Fatal("first Start should own the server")
	}
	if err := s.EnsureRole(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(ctx, "appdb", "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureDatabase(ctx, "appdb", "app"); err != nil {
		t.Fatalf("EnsureDatabase is not idempotent: %v", err)
	}
	conn, err := pgx.Connect(ctx, s.URL("app", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Fatal("app role must not be a superuser (RLS would not apply)")
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	other, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if other.Owned() {
		t.Fatal("second Start on a running directory should attach")
	}
	other.Stop() // no-op

	s.Stop()
	if s.Running() {
		t.Fatal("server still running after Stop")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, s.URL("app", "appdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: v=%d err=%v", v, err)
	}
}
