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
func Applied(ctx context.Context, db Querier) ([]string, error) {
	rows, err := db.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Querier is what Applied and Check need: *pgx.Conn and *pgxpool.Pool both
// qualify.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SchemaError is Check's answer when the database's recorded migrations are
// not exactly this binary's: Pending are embedded but not applied (the
// schema is behind), Unknown are applied but not embedded (a newer binary
// migrated it; the schema is ahead).
type SchemaError struct {
	Database string // the newest recorded version, "" when none is
	Binary   string // the newest embedded version
	Pending  []string
	Unknown  []string
}

func (e *SchemaError) Error() string {
	db := e.Database
	if db == "" {
		db = "none (no migration applied)"
	}
	if len(e.Unknown) > 0 {
		return fmt.Sprintf("database schema is at %s, ahead of this registryd's %s (unknown migrations %s, applied by a newer registryd): "+
			"run a registryd that has them; this one's `registryd migrate` cannot undo them",
			db, e.Binary, strings.Join(e.Unknown, ", "))
	}
	return fmt.Sprintf("database schema is at %s, behind this registryd's %s (pending migrations %s): "+
		"run `registryd migrate` (or `registryd serve --migrate`) first",
		db, e.Binary, strings.Join(e.Pending, ", "))
}

// Check compares the database's recorded migrations with the embedded ones
// and returns a *SchemaError unless they are the same set. A database
// without schema_migrations has none applied.
func Check(ctx context.Context, db Querier) error {
	all, err := All()
	if err != nil {
		return fmt.Errorf("reading migrations: %v", err)
	}
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("reading the schema version: %v", err)
	}
	var applied []string
	if exists {
		if applied, err = Applied(ctx, db); err != nil {
			return fmt.Errorf("reading the schema version: %v", err)
		}
	}
	e := &SchemaError{}
	if len(all) > 0 {
		e.Binary = all[len(all)-1].Version
	}
	if len(applied) > 0 {
		e.Database = applied[len(applied)-1]
	}
	recorded := make(map[string]bool, len(applied))
	for _, v := range applied {
		recorded[v] = true
	}
	embedded := make(map[string]bool, len(all))
	for _, m := range all {
		embedded[m.Version] = true
		if !recorded[m.Version] {
			e.Pending = append(e.Pending, m.Version)
		}
	}
	for _, v := range applied {
		if !embedded[v] {
			e.Unknown = append(e.Unknown, v)
		}
	}
	if len(e.Pending) == 0 && len(e.Unknown) == 0 {
		return nil
	}
	return e
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
