package psa

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestStandIn(t *testing.T) {
	cfg := Config{SessionSecret: []byte("s3cret"), ExtensionID: "com.acme.agreements", ContentHash: "sha256:" + strings.Repeat("a", 64), VendorAPIKey: "k"}
	srv := httptest.NewServer(Handler(cfg))
	defer srv.Close()

	get := func(path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("host page mounts the configured extension for the tenant", func(t *testing.T) {
		code, body := get("/?tenant=other")
		if code != 200 || !strings.Contains(body, `data-tenant="other"`) || !strings.Contains(body, cfg.ContentHash) || !strings.Contains(body, "/ext-sdk/v1/host.js") {
			t.Fatalf("%d %s", code, body)
		}
		if _, body := get("/?tenant=" + "bad%20tenant"); !strings.Contains(body, `data-tenant="demo"`) {
			t.Fatal("an invalid tenant must fall back to demo")
		}
	})
	t.Run("session tokens verify with the shared secret and carry the tenant", func(t *testing.T) {
		_, body := get("/session?tenant=t2")
		tok := body[strings.Index(body, `"token":"`)+9:]
		tok = tok[:strings.Index(tok, `"`)]
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return cfg.SessionSecret, nil },
			jwt.WithIssuer("psa"), jwt.WithAudience("extedge"), jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err != nil || claims["tenant"] != "t2" {
			t.Fatalf("token %v claims %v", err, claims)
		}
		exp, _ := claims.GetExpirationTime()
		if time.Until(exp.Time) > 11*time.Minute {
			t.Fatalf("token lives too long: %v", exp)
		}
		// The iframe's token is scoped to its extension and cannot read the
		// debug stream (SPEC §16).
		if claims["ext"] != cfg.ExtensionID {
			t.Fatalf("ext claim %v, want %q", claims["ext"], cfg.ExtensionID)
		}
		for _, p := range claims["perms"].([]any) {
			if p == "extension:debug" {
				t.Fatalf("iframe token carries extension:debug: %v", claims["perms"])
			}
		}
	})
	t.Run("vendor API demands the key and counts calls", func(t *testing.T) {
		if code, _ := get("/vendor/agreements"); code != 401 {
			t.Fatalf("without key: %d", code)
		}
		if code, _ := get("/vendor/agreements", "X-Api-Key", "wrong"); code != 401 {
			t.Fatalf("wrong key: %d", code)
		}
		code, body := get("/vendor/agreements", "X-Api-Key", "k")
		if code != 200 || strings.Count(body, `"id"`) != 23 {
			t.Fatalf("%d %s", code, body)
		}
		if _, body := get("/vendor/calls"); body != `{"calls":1}` {
			t.Fatalf("calls = %s", body)
		}
	})
}
