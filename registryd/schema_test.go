package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
)

// TestServeRefusesAMismatchedSchema: serve checks the database's recorded
// migrations against its own before serving, and refuses a schema that is
// behind (naming both versions and `registryd migrate`) or ahead.
func TestServeRefusesAMismatchedSchema(t *testing.T) {
	pg := testenv.Postgres(t)
	all, err := migrations.All()
	if err != nil || len(all) < 2 {
		t.Fatalf("need two migrations for the behind case: %d, %v", len(all), err)
	}
	binary, previous := all[len(all)-1].Version, all[len(all)-2].Version
	const future = "9999_from_a_newer_registryd"

	// migrated returns a new database with every migration applied, then
	// edit run on it as the application role (which owns schema_migrations).
	migrated := func(t *testing.T, edit string, args ...any) string {
		url := pg.NewDatabase(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if _, err := migrations.Apply(ctx, pool); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, edit, args...); err != nil {
			t.Fatal(err)
		}
		return url
	}
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		migrate bool
		want    []string
	}{
		{"empty database is behind", func(t *testing.T) string { return pg.NewDatabase(t) }, false,
			[]string{"schema is at none", "behind", binary, "registryd migrate", "serve --migrate"}},
		{"database one migration behind", func(t *testing.T) string {
			return migrated(t, "DELETE FROM schema_migrations WHERE version = $1", binary)
		}, false, []string{"schema is at " + previous, "behind", binary, "registryd migrate", "serve --migrate"}},
		{"database ahead of the binary", func(t *testing.T) string {
			return migrated(t, "INSERT INTO schema_migrations (version) VALUES ($1)", future)
		}, false, []string{"schema is at " + future, "ahead", binary, future, "newer registryd"}},
		{"database ahead is refused even with --migrate", func(t *testing.T) string {
			return migrated(t, "INSERT INTO schema_migrations (version) VALUES ($1)", future)
		}, true, []string{"schema is at " + future, "ahead", binary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"serve", "--listen", "127.0.0.1:0", "--database-url", tt.url(t),
				"--bundle-store", "file://" + filepath.Join(t.TempDir(), "blobs")}
			if tt.migrate {
				args = append(args, "--migrate")
			}
			_, errOut, code := runCLI(t, args...)
			if code != 1 {
				t.Fatalf("serve exited %d, want 1; stderr %q", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
		})
	}
}
