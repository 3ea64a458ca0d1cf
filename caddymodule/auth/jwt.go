package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/extedge/extedge/internal/tenantid"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// JWTConfig configures session-token authentication. Exactly one of
// KeyFile, SecretFile and JWKS must be set.
type JWTConfig struct {
	// KeyFile is a PEM PUBLIC KEY (PKIX): RSA (RS256), ECDSA P-256 (ES256)
	// or Ed25519 (EdDSA).
	KeyFile string
	// SecretFile holds the HS256 secret; surrounding whitespace is trimmed.
	SecretFile string
	// JWKS, when set, supplies keys by `kid` (RS256, ES256, EdDSA).
	JWKS *JWKS
	// Issuer and Audience, when set, must match `iss` and `aud`.
	Issuer, Audience string
	// TenantClaim names the claim holding the tenant id. Default `tenant`.
	TenantClaim string
	// Cookie, when set, is read when there is no Authorization header.
	Cookie string
	// Leeway tolerates clock skew on exp and nbf. Default 30s.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// JWT authenticates with a signed session token. Key material is read by
// LoadKey (the gateway calls it at provision, so `caddy validate` reports
// a missing or unparsable file) or else on first use, and kept; a failed
// read is retried at most once per second.
type JWT struct {
	cfg    JWTConfig
	parser *jwt.Parser

	mu       sync.Mutex
	key      any // loaded verification key (KeyFile/SecretFile)
	methods  []string
	loadErr  error
	loadedAt time.Time

	// verified caches tokens that passed verification, keyed by the raw
	// token, so the hot path skips signature checks. Entries keep the
	// expiry and are rechecked against the clock on every hit.
	verified *lru.Cache[string, cachedIdentity]
}

type cachedIdentity struct {
	id        *Identity
	notBefore time.Time
	expires   time.Time
}

// verifiedCacheSize bounds the verified-token cache.
const verifiedCacheSize = 8192

// NewJWT checks the configuration; it does no I/O.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	n := 0
	for _, s := range []bool{cfg.KeyFile != "", cfg.SecretFile != "", cfg.JWKS != nil} {
		if s {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("auth jwt: exactly one of key_file, secret_file and jwks_url is required")
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithExpirationRequired(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	switch {
	case cfg.SecretFile != "":
		opts = append(opts, jwt.WithValidMethods([]string{"HS256"}))
	case cfg.JWKS != nil:
		opts = append(opts, jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}))
	}
	cache, _ := lru.New[string, cachedIdentity](verifiedCacheSize)
	return &JWT{cfg: cfg, parser: jwt.NewParser(opts...), verified: cache}, nil
}

// Authenticate implements Authenticator.
func (j *JWT) Authenticate(r *http.Request) (*Identity, error) {
	raw, byCookie := bearer(r), false
	if raw == "" && j.cfg.Cookie != "" {
		if c, err := r.Cookie(j.cfg.Cookie); err == nil {
			raw, byCookie = c.Value, true
		}
	}
	if raw == "" {
		return nil, errorsJoin("no session token")
	}
	id, err := j.verify(raw)
	if err != nil || !byCookie {
		return id, err
	}
	// Cached identities are shared between requests; the credential's
	// source is a fact of this request.
	cookieID := *id
	cookieID.ByCookie = true
	return &cookieID, nil
}

// verify checks a raw token, from the cache of verified tokens when it
// is there.
func (j *JWT) verify(raw string) (*Identity, error) {
	now := j.cfg.Now()
	if c, ok := j.verified.Get(raw); ok {
		if now.Before(c.expires.Add(j.cfg.Leeway)) && !now.Before(c.notBefore.Add(-j.cfg.Leeway)) {
			return c.id, nil
		}
		j.verified.Remove(raw)
		return nil, errorsJoin("token expired")
	}
	claims := jwt.MapClaims{}
	if _, err := j.parser.ParseWithClaims(raw, claims, j.keyFunc); err != nil {
		return nil, &authError{msg: "invalid token: " + err.Error()}
	}
	id, err := j.identity(claims)
	if err != nil {
		return nil, err
	}
	exp, _ := claims.GetExpirationTime()
	c := cachedIdentity{id: id, expires: exp.Time}
	if nbf, _ := claims.GetNotBefore(); nbf != nil {
		c.notBefore = nbf.Time
	}
	j.verified.Add(raw, c)
	return id, nil
}

func (j *JWT) identity(claims jwt.MapClaims) (*Identity, error) {
	tenant, _ := claims[j.cfg.TenantClaim].(string)
	if !tenantid.Valid(tenant) {
		return nil, errorsJoin("missing or invalid tenant claim")
	}
	id := &Identity{Tenant: tenant}
	if v, ok := claims["ext"]; ok {
		id.Scoped, id.Extensions = true, extClaim(v)
	}
	id.UserID, _ = claims["sub"].(string)
	id.Email, _ = claims["email"].(string)
	id.Name, _ = claims["name"].(string)
	id.UserType, _ = claims["user_type"].(string)
	switch p := claims["perms"].(type) {
	case string:
		id.Permissions = strings.Fields(p)
	case []any:
		for _, v := range p {
			if s, ok := v.(string); ok {
				id.Permissions = append(id.Permissions, s)
			}
		}
	}
	return id, nil
}

func (j *JWT) keyFunc(t *jwt.Token) (any, error) {
	if j.cfg.JWKS != nil {
		kid, _ := t.Header["kid"].(string)
		return j.cfg.JWKS.Key(kid, t.Method.Alg())
	}
	key, methods, err := j.loadKey()
	if err != nil {
		return nil, err
	}
	alg := t.Method.Alg()
	for _, m := range methods {
		if m == alg {
			return key, nil
		}
	}
	return nil, fmt.Errorf("algorithm %s does not fit the configured key", alg)
}

// LoadKey reads the key_file or secret_file now and reports a missing or
// unusable one with its path. With JWKS it does nothing (no dialing).
func (j *JWT) LoadKey() error {
	if j.cfg.JWKS != nil {
		return nil
	}
	_, _, err := j.loadKey()
	return err
}

func (j *JWT) loadKey() (any, []string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.key != nil {
		return j.key, j.methods, nil
	}
	if j.loadErr != nil && time.Since(j.loadedAt) < time.Second {
		return nil, nil, j.loadErr
	}
	j.loadedAt = time.Now()
	if j.cfg.SecretFile != "" {
		b, err := os.ReadFile(j.cfg.SecretFile)
		if err != nil {
			j.loadErr = fmt.Errorf("reading jwt secret_file: %v", err)
			return nil, nil, j.loadErr
		}
		secret := []byte(strings.TrimSpace(string(b)))
		if len(secret) < 16 {
			j.loadErr = fmt.Errorf("jwt secret_file %s: secret shorter than 16 bytes", j.cfg.SecretFile)
			return nil, nil, j.loadErr
		}
		j.key, j.methods, j.loadErr = secret, []string{"HS256"}, nil
		return j.key, j.methods, nil
	}
	key, methods, err := LoadPublicKey(j.cfg.KeyFile)
	if err != nil {
		j.loadErr = err
		return nil, nil, err
	}
	j.key, j.methods, j.loadErr = key, methods, nil
	return key, methods, nil
}

// LoadPublicKey reads a PEM PUBLIC KEY and returns it with the JWT
// algorithms it verifies.
func LoadPublicKey(path string) (any, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading jwt key_file: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, nil, fmt.Errorf("jwt key_file %s: no PEM block", path)
	}
	var pub any
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(blk.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		err = fmt.Errorf("unexpected PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("jwt key_file %s: %v", path, err)
	}
	methods := methodsFor(pub)
	if methods == nil {
		return nil, nil, fmt.Errorf("jwt key_file %s: unsupported %T key (want RSA, ECDSA P-256 or Ed25519)", path, pub)
	}
	return pub, methods, nil
}

func methodsFor(pub any) []string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return []string{"RS256"}
	case *ecdsa.PublicKey:
		if k.Curve.Params().Name == "P-256" {
			return []string{"ES256"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// bearer returns the token of an `Authorization: Bearer` header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// extClaim returns the extensions an `ext` claim names: a non-empty
// string, or an array of non-empty strings. Anything else (a number, an
// object, "", an array with a non-string or empty member) names none.
func extClaim(v any) []string {
	switch c := v.(type) {
	case string:
		if c != "" {
			return []string{c}
		}
	case []any:
		out := make([]string, 0, len(c))
		for _, e := range c {
			s, ok := e.(string)
			if !ok || s == "" {
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}
