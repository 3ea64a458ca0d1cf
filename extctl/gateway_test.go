package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/testenv"
)

// testGateway is a real Caddy with the extedge module in front of a test
// registry and one runner socket, authenticating HS256 session tokens
// (issuer psa, audience extedge) signed with its secret; what the
// gateway-facing commands (logs --follow, dev) talk to.
type testGateway struct {
	*testenv.CaddyServer
	secret string
}

// startGateway starts it. registryURL and serviceToken reach the registry;
// runnerSock and runnerToken a runner (which need not exist); dir holds
// its files.
func startGateway(t *testing.T, dir, registryURL, serviceToken, runnerSock, runnerToken, redisURL string) *testGateway {
	t.Helper()
	const secret = "gateway-test-jwt-secret-0123456789"
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caddy := testenv.Caddy(t, fmt.Sprintf(`	extedge {
		registry %s {
			token_file %s
		}
		runners unix/%s {
			token_file %s
		}
		auth jwt {
			secret_file %s
			issuer psa
			audience extedge
		}
		ui_cache %s
		timeout 60s
		rate_limit {
			per_tenant 100r/s burst 100
			redis %s
		}
	}`, registryURL, serviceToken, runnerSock, runnerToken, write("jwt.secret", secret), filepath.Join(dir, "ui"), redisURL))
	return &testGateway{CaddyServer: caddy, secret: secret}
}

// token is a session token of tenant with perms, valid for an hour.
func (g *testGateway) token(t *testing.T, tenant, perms string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "psa", "aud": "extedge", "tenant": tenant,
		"sub": "author-1", "perms": perms, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(g.secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
