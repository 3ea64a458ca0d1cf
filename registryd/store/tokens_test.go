package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestTokenExpiryBeatsTheCache: a cached authentication does not outlive
// the token's expires_at (the cache keeps working for 10 s, the expiry does
// not wait for it).
func TestTokenExpiryBeatsTheCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := testenv.Postgres(t)
	db, err := Open(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	db.now = func() time.Time { return clock }

	expiry := clock.Add(time.Hour).Truncate(time.Microsecond)
	tok, _, err := db.CreateTokenUntil(ctx, RoleService, "", "short", expiry)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.Authenticate(ctx, tok)
	if err != nil || !p.ExpiresAt.Equal(expiry) {
		t.Fatalf("before expiry: %+v, %v", p, err)
	}
	clock = expiry.Add(-time.Second)
	if _, err := db.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a second before expiry (cached): %v", err)
	}
	clock = expiry
	if _, err := db.Authenticate(ctx, tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at expiry (cached): err = %v, want ErrTokenExpired", err)
	}
	clock = expiry.Add(time.Minute)
	db.tokens = newTokenCache()
	if _, err := db.Authenticate(ctx, tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("after expiry (from the database): err = %v, want ErrTokenExpired", err)
	}
	never, _, err := db.CreateToken(ctx, RoleService, "", "forever")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, never); err != nil {
		t.Fatalf("a token without expiry: %v", err)
	}
}
