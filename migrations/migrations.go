// Package migrations holds registryd's SQL schema (SPEC §7.2) and applies it.
//
// Files are named NNNN_description.sql and applied in name order, each once,
// each in its own transaction, and recorded in schema_migrations. Every
// transaction first takes a transaction-scoped advisory lock, so concurrent
// `registryd migrate` runs (several replicas starting at once) serialise and
// the later ones find nothing left to do.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_xact_lock key for migrations ("extedge" in ASCII).
const lockKey int64 = 0x65787465646765

// Migration is one schema file.
type Migration struct {
	// Version is the file name without ".sql", e.g. "0001_init".
	Version string
	SQL     string
}

// All returns the embedded migrations in the order they are applied.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: strings.TrimSuffix(n, ".sql"), SQL: string(b)})
	}
	return out, nil
}

// Beginner is what Apply needs: *pgx.Conn and *pgxpool.Pool both qualify.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Apply applies every migration not yet recorded and returns the versions it
// applied (empty when the schema was up to date).
func Apply(ctx context.Context, db Beginner) ([]string, error) {
	all, err := All()
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %v", err)
	}
	var applied []string
	for _, m := range all {
		did, err := applyOne(ctx, db, m)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Version, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// applyOne runs m in its own transaction unless it is already recorded.
func applyOne(ctx context.Context, db Beginner, m Migration) (bool, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE version = $1", m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	// No arguments: pgx uses the simple protocol, so a file may hold many statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Position > 0 {
			return false, fmt.Errorf("%v (near %q)", err, near(m.SQL, int(pe.Position)))
		}
		return false, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// Applied lists the recorded versions, in order.
func Applied(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]string, error) {
	rows, err := db.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// near returns a short excerpt of sql around the 1-based character position.
func near(sql string, pos int) string {
	r := []rune(sql)
	start, end := pos-30, pos+30
	if start < 0 {
		start = 0
	}
	if end > len(r) {
		end = len(r)
	}
	if start > len(r) {
		return ""
	}
	return strings.TrimSpace(string(r[start:end]))
}
