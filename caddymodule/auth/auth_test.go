package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

func claims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"tenant": "t-1", "iss": "psa", "aud": "extedge", "exp": time.Now().Add(time.Hour).Unix(),
		"sub": "u1", "perms": []any{"extension:read"}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func writePub(t *testing.T, pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	return p
}

func bearerReq(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestJWTAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		name   string
		method jwt.SigningMethod
		priv   crypto.PrivateKey
		pub    crypto.PublicKey
	}{
		{"RS256 with an RSA key_file", jwt.SigningMethodRS256, rsaKey, &rsaKey.PublicKey},
		{"ES256 with a P-256 key_file", jwt.SigningMethodES256, ecKey, &ecKey.PublicKey},
		{"EdDSA with an Ed25519 key_file", jwt.SigningMethodEdDSA, edKey, edKey.Public()},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := NewJWT(JWTConfig{KeyFile: writePub(t, c.pub), Issuer: "psa", Audience: "extedge"})
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := jwt.NewWithClaims(c.method, claims(nil)).SignedString(c.priv)
			id, err := a.Authenticate(bearerReq(tok))
			if err != nil || id.Tenant != "t-1" || !id.Has(PermRead) || id.UserID != "u1" {
				t.Fatalf("got %+v, %v", id, err)
			}
		})
	}
	t.Run("HS256 token is refused by a public-key config (algorithm confusion)", func(t *testing.T) {
		pubFile := writePub(t, &rsaKey.PublicKey)
		a, _ := NewJWT(JWTConfig{KeyFile: pubFile})
		pemBytes, _ := os.ReadFile(pubFile)
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(pemBytes)
		if _, err := a.Authenticate(bearerReq(tok)); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("none algorithm is refused", func(t *testing.T) {
		a, _ := NewJWT(JWTConfig{KeyFile: writePub(t, &rsaKey.PublicKey)})
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if _, err := a.Authenticate(bearerReq(tok)); err == nil {
			t.Fatal("alg none accepted")
		}
	})
}

func TestJWKS(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ecKey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer srv.Close()
	jwks := &JWKS{URL: srv.URL}
	a, err := NewJWT(JWTConfig{JWKS: jwks})
	if err != nil {
		t.Fatal(err)
	}
	if fetches.Load() != 0 {
		t.Fatal("JWKS fetched at construction")
	}
	mint := func(kid string) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, claims(nil))
		tk.Header["kid"] = kid
		s, _ := tk.SignedString(ecKey)
		return s
	}
	if id, err := a.Authenticate(bearerReq(mint("k1"))); err != nil || id.Tenant != "t-1" {
		t.Fatalf("JWKS token: %v", err)
	}
	a.Authenticate(bearerReq(mint("k1")))
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches, want the set cached", fetches.Load())
	}
	if _, err := a.Authenticate(bearerReq(mint("unknown"))); err == nil {
		t.Fatal("unknown kid accepted")
	}
}

func TestTokenSources(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("  0123456789abcdef0123  \n"), 0o600)
	a, _ := NewJWT(JWTConfig{SecretFile: secret, Cookie: "psa_session"})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString([]byte("0123456789abcdef0123"))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "psa_session", Value: tok})
	if _, err := a.Authenticate(r); err != nil {
		t.Fatalf("cookie: %v", err)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "bearer "+tok)
	if _, err := a.Authenticate(r); err != nil {
		t.Fatalf("lower-case bearer: %v", err)
	}
}

func TestVerifiedCacheHonoursExpiry(t *testing.T) {
	now := time.Now()
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("0123456789abcdef0123"), 0o600)
	a, _ := NewJWT(JWTConfig{SecretFile: secret, Leeway: time.Second, Now: func() time.Time { return now }})
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(jwt.MapClaims{"exp": now.Add(10 * time.Second).Unix()})).SignedString([]byte("0123456789abcdef0123"))
	if _, err := a.Authenticate(bearerReq(tok)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(20 * time.Second)
	if _, err := a.Authenticate(bearerReq(tok)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("cached token used after expiry: %v", err)
	}
}

func TestTrustedHeaderSecret(t *testing.T) {
	a := TrustedHeader{Header: "X-Alga-Tenant", SecretHeader: "X-Proxy-Secret", Secret: []byte("0123456789abcdef")}
	for _, c := range []struct {
		name    string
		secrets []string
		ok      bool
	}{
		{"right secret", []string{"0123456789abcdef"}, true},
		{"no secret", nil, false},
		{"wrong secret", []string{"0123456789abcdeX"}, false},
		{"prefix of the secret", []string{"0123456789"}, false},
		{"empty secret", []string{""}, false},
		{"two values", []string{"0123456789abcdef", "0123456789abcdef"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Alga-Tenant", "t-1")
			for _, v := range c.secrets {
				r.Header.Add("X-Proxy-Secret", v)
			}
			id, err := a.Authenticate(r)
			if (err == nil) != c.ok {
				t.Fatalf("got %+v, %v", id, err)
			}
			if err != nil && !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
		})
	}
}

func TestTrustedHeader(t *testing.T) {
	a := TrustedHeader{Header: "X-Alga-Tenant"}
	for _, c := range []struct {
		name string
		vals []string
		ok   bool
	}{
		{"one valid tenant", []string{"t-1"}, true},
		{"missing", nil, false},
		{"two values", []string{"t-1", "t-2"}, false},
		{"invalid characters", []string{"t 1"}, false},
		{"too long", []string{string(make([]byte, 65))}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range c.vals {
				r.Header.Add("X-Alga-Tenant", v)
			}
			id, err := a.Authenticate(r)
			if (err == nil) != c.ok {
				t.Fatalf("got %+v, %v", id, err)
			}
		})
	}
}

func TestJWKSSlowIdPIsFetchedOnceNotPerToken(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int64
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(300 * time.Millisecond)
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ecKey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	defer srv.Close()
	jwks := &JWKS{URL: srv.URL, MinRefetch: 2 * time.Second}
	a, err := NewJWT(JWTConfig{JWKS: jwks})
	if err != nil {
		t.Fatal(err)
	}
	// Ten bogus tokens at once against a slow, failing IdP: one fetch,
	// joined by all of them (before, each token fetched again, serially).
	mint := func(kid string, key any) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, claims(nil))
		tk.Header["kid"] = kid
		s, _ := tk.SignedString(key)
		return s
	}
	bogus, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Authenticate(bearerReq(mint(fmt.Sprintf("bogus-%d", i), bogus))); err == nil {
				t.Error("bogus token accepted")
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 10 concurrent tokens, want 1", n)
	}
	// Within MinRefetch further tokens fail without a fetch.
	for i := range 10 {
		if _, err := a.Authenticate(bearerReq(mint(fmt.Sprintf("again-%d", i), bogus))); err == nil {
			t.Fatal("bogus token accepted")
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("after a failed fetch: %d fetches for 10 more tokens, want no new fetch", n)
	}
	// Once MinRefetch has passed and the IdP is back, a good token works.
	healthy.Store(true)
	time.Sleep(2100 * time.Millisecond)
	if id, err := a.Authenticate(bearerReq(mint("k1", ecKey))); err != nil || id.Tenant != "t-1" {
		t.Fatalf("after recovery: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}
