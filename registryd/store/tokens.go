package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Token roles (SPEC §7.3).
const (
	RolePlatformAdmin = "platform_admin"
	RoleTenantAdmin   = "tenant_admin"
	RoleService       = "service"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool {
	return r == RolePlatformAdmin || r == RoleTenantAdmin || r == RoleService
}

// Principal is who a bearer token authenticates.
type Principal struct {
	TokenID string
	Role    string
	// Tenant is set for tenant_admin only.
	Tenant string
	// ExpiresAt is when the token stops working; zero never expires.
	ExpiresAt time.Time
}

// tokenPrefix marks extedge registry tokens, so secret scanners can find
// leaked ones.
const tokenPrefix = "ext_"

// CreateToken makes a new random token (32 bytes) that never expires,
// stores only its SHA-256, and returns the token (shown once) and its row id.
func (db *DB) CreateToken(ctx context.Context, role, tenant, name string) (token, id string, err error) {
	return db.CreateTokenUntil(ctx, role, tenant, name, time.Time{})
}

// CreateTokenUntil is CreateToken for a token that Authenticate refuses
// (ErrTokenExpired) from expiresAt on; a zero expiresAt never expires.
func (db *DB) CreateTokenUntil(ctx context.Context, role, tenant, name string, expiresAt time.Time) (token, id string, err error) {
	if !ValidRole(role) {
		return "", "", Errorf(CodeInvalidRequest, "unknown role %q (want platform_admin, tenant_admin or service)", role)
	}
	if (role == RoleTenantAdmin) != (tenant != "") {
		return "", "", Errorf(CodeInvalidRequest, "--tenant is required for tenant_admin and only for it")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	var expires *time.Time
	if !expiresAt.IsZero() {
		expires = &expiresAt
	}
	err = db.Pool.QueryRow(ctx, `INSERT INTO api_token (token_hash, role, tenant_id, name, expires_at) VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5) RETURNING id::text`,
		sum[:], role, tenant, name, expires).Scan(&id)
	if err != nil {
		return "", "", wrap(err)
	}
	return token, id, nil
}

// Authentication failures: the API answers both with 401 unauthorized,
// "invalid token" or "token expired".
var (
	// ErrBadToken means the token is unknown or revoked.
	ErrBadToken = errors.New("unknown token")
	// ErrTokenExpired means the token is known but past its expires_at.
	ErrTokenExpired = errors.New("token expired")
)

// tokenCacheTTL bounds how long a revoked token keeps working on a replica.
const tokenCacheTTL = 10 * time.Second

// Authenticate looks a token up by its hash and compares the stored hash in
// constant time. Results are cached for a few seconds; the expiry is checked
// on every call, cached or not, so a token stops at its expires_at exactly.
func (db *DB) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if token == "" || len(token) > 256 {
		return nil, ErrBadToken
	}
	sum := sha256.Sum256([]byte(token))
	now := db.now()
	if p, ok := db.tokens.get(sum, now); ok {
		return checkExpiry(p, now)
	}
	var (
		p       Principal
		stored  []byte
		tenant  *string
		expires *time.Time
	)
	err := db.Pool.QueryRow(ctx, `SELECT id::text, token_hash, role, tenant_id, expires_at FROM api_token WHERE token_hash = $1 AND revoked_at IS NULL`, sum[:]).
		Scan(&p.TokenID, &stored, &p.Role, &tenant, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, wrap(err)
	}
	if subtle.ConstantTimeCompare(stored, sum[:]) != 1 {
		return nil, ErrBadToken
	}
	if tenant != nil {
		p.Tenant = *tenant
	}
	if expires != nil {
		p.ExpiresAt = *expires
	}
	db.tokens.put(sum, &p, now)
	return checkExpiry(&p, now)
}

// checkExpiry returns p, or ErrTokenExpired from p's expires_at on.
func checkExpiry(p *Principal, now time.Time) (*Principal, error) {
	if !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt) {
		return nil, ErrTokenExpired
	}
	return p, nil
}

// tokenCache maps token hashes to principals for tokenCacheTTL; bounded.
type tokenCache struct {
	mu sync.Mutex
	m  map[[32]byte]tokenEntry
}

type tokenEntry struct {
	p   *Principal
	exp time.Time
}

const tokenCacheMax = 10000

func newTokenCache() *tokenCache { return &tokenCache{m: make(map[[32]byte]tokenEntry)} }

func (c *tokenCache) get(k [32]byte, now time.Time) (*Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.After(e.exp) {
		return nil, false
	}
	return e.p, true
}

func (c *tokenCache) put(k [32]byte, p *Principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= tokenCacheMax {
		clear(c.m)
	}
	c.m[k] = tokenEntry{p: p, exp: now.Add(tokenCacheTTL)}
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"`
	Tenant    string     `json:"tenant,omitempty"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// ExpiresAt is absent for a token that never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ListTokens lists tokens (never their values), oldest first.
func (db *DB) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id::text, role, coalesce(tenant_id, ''), coalesce(name, ''), created_at, revoked_at, expires_at FROM api_token ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TokenInfo, error) {
		var t TokenInfo
		err := r.Scan(&t.ID, &t.Role, &t.Tenant, &t.Name, &t.CreatedAt, &t.RevokedAt, &t.ExpiresAt)
		return t, err
	})
	return out, wrap(err)
}

// RevokeToken revokes a token by id. Replicas stop accepting it within
// tokenCacheTTL.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	if !validUUID(id) {
		return Errorf(CodeNotFound, "no token with id %q", id)
	}
	tag, err := db.Pool.Exec(ctx, `UPDATE api_token SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return Errorf(CodeNotFound, "no token with id %q", id)
	}
	return nil
}
