// Package store is registryd's Postgres layer: every SQL statement the
// registry runs lives here, behind methods named for what they do.
//
// Tenant isolation is enforced twice. Every query on a tenant-scoped table
// carries a tenant_id predicate, and runs in a transaction that first calls
// set_config('extedge.tenant', tenant, true), which the row-level security
// policies of migrations/0001_init.sql check (they are FORCEd, so they bind
// the table owner too). To spare round trips the setting travels with the
// work: inside the BEGIN message for transactions (inTenant), or as the
// first statement of a batch, which Postgres runs as one implicit
// transaction, for single reads such as KV get and list (queueTenant). The platform scope '*' is used only by service paths
// that must see every tenant (execution ingestion groups by tenant and sets
// each one; the change feed reads change_log, which is not tenant-scoped).
//
// The application must connect as a role that is neither superuser nor
// BYPASSRLS, or the policies are skipped; Open reports which it got and
// registryd logs a warning for a superuser connection.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/extedge/extedge/internal/tenantid"
)

// Error is a failure with a stable API code (the api package maps codes to
// HTTP statuses). Message is safe to show to clients.
type Error struct {
	Code    string
	Message string
	Details any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Codes returned by this package.
const (
	CodeNotFound            = "not_found"
	CodeNotInstalled        = "not_installed"
	CodeInvalidRequest      = "invalid_request"
	CodeVersionExists       = "version_exists"
	CodeVersionRevoked      = "version_revoked"
	CodeCapNotDeclared      = "capability_not_declared"
	CodePublisherMismatch   = "publisher_mismatch"
	CodeDatabaseUnavailable = "database_unavailable"
	CodeRevisionMismatch    = "revision_mismatch"
	CodeQuotaExceeded       = "quota_exceeded"
	CodeValidationFailed    = "validation_failed"
	CodeForbidden           = "forbidden"
)

// DB is the registry database.
type DB struct {
	Pool *pgxpool.Pool
	// Bypass reports that the connection role is a superuser or has
	// BYPASSRLS, so row-level security is not in effect (predicates still are).
	Bypass bool

	tokens *tokenCache
	now    func() time.Time
}

// Open connects a pool to url and checks the connection role.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %v", redact(err))
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to database: %v", err)
	}
	db := &DB{Pool: pool, tokens: newTokenCache(), now: time.Now}
	err = pool.QueryRow(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&db.Bypass)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to database: %v", err)
	}
	return db, nil
}

// redact keeps passwords in URLs out of error messages.
func redact(err error) string {
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.Index(s[i:], "@"); j >= 0 {
			return s[:i+3] + "…" + s[i+j:]
		}
	}
	return s
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return wrap(db.Pool.QueryRow(ctx, "SELECT 1").Scan(&one))
}

// platformScope is the row-level-security scope that reads and writes
// across tenants (migrations/0001_init.sql). It is deliberately not a tenant
// id (tenantid.Valid refuses it), so no tenant-facing input can reach it;
// only platform jobs (retention, janitors) pass it to inTenant, by name.
const platformScope = "*"

// inTenant runs fn in a transaction scoped to tenant (a tenant id, or
// platformScope): the RLS setting is made before fn runs and lasts until
// commit.
//
// The setting travels with BEGIN in one simple-protocol message, so the
// transaction costs no extra round trip for it. Only a scope made of the
// characters tenantid.Valid allows (or platformScope) is written into that
// SQL text; anything else is sent as a parameter in a statement of its own.
func (db *DB) inTenant(ctx context.Context, tenant string, fn func(tx pgx.Tx) error) error {
	if begin, ok := beginInTenant(tenant); ok {
		return wrap(pgx.BeginTxFunc(ctx, db.Pool, pgx.TxOptions{BeginQuery: begin}, fn))
	}
	return wrap(pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := setTenant(ctx, tx, tenant); err != nil {
			return err
		}
		return fn(tx)
	}))
}

// beginInTenant is the BEGIN that also makes the RLS setting, for a scope
// that needs no quoting (letters, digits, '.', '_', '-', or '*').
func beginInTenant(tenant string) (string, bool) {
	if tenant != platformScope && !tenantid.Valid(tenant) {
		return "", false
	}
	return "BEGIN; SELECT set_config('extedge.tenant', '" + tenant + "', true)", true
}

// queueTenant queues the RLS setting as the first statement of a batch
// sent outside a transaction: Postgres runs a batch (one Sync) as one
// implicit transaction, so the setting covers the statements queued after
// it, and the whole read is one round trip.
func queueTenant(b *pgx.Batch, tenant string) {
	b.Queue("SELECT set_config('extedge.tenant', $1, true)", tenant)
}

func setTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	if tenant == "" {
		return errors.New("empty tenant scope")
	}
	_, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', $1, true)", tenant)
	return err
}

// inTx runs fn in a transaction without tenant scope (catalog tables).
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return wrap(pgx.BeginFunc(ctx, db.Pool, fn))
}

// wrap turns connection-level failures into CodeDatabaseUnavailable and
// leaves everything else as is.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if Unavailable(err) {
		return &Error{Code: CodeDatabaseUnavailable, Message: "database unavailable"}
	}
	return err
}

// Unavailable reports whether err means the database could not be reached
// or went away (as opposed to a query error).
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Code == CodeDatabaseUnavailable
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08: connection exception; 57P01-57P03: shutdown, crash, cannot connect now; 53300 too many connections.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "closed pool") || strings.Contains(s, "conn closed") ||
		strings.Contains(s, "connection refused") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "no such file or directory") ||
		strings.Contains(s, "unexpected EOF")
}

// addChange records a change-feed event in tx; listeners are notified when
// tx commits (trigger change_log_notify).
func addChange(ctx context.Context, tx pgx.Tx, typ, tenant, extension, contentHash string) error {
	_, err := tx.Exec(ctx, `INSERT INTO change_log (type, tenant_id, extension, content_hash) VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4, ''))`,
		typ, tenant, extension, contentHash)
	return err
}
