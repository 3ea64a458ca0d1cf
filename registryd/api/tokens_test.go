package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/registryd/api"
	"github.com/extedge/extedge/registryd/store"
)

// TestTokenExpiry: a token with an expiry works until then, and is refused
// with 401 unauthorized "token expired" afterwards. Time passes by moving
// expires_at into the past in the database, and the check runs on a
// second replica (its own authentication cache), as after the 10 s cache.
func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	tok, id, err := e.db.CreateTokenUntil(ctx, store.RoleService, "", "short-lived", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("GET", "/v1/extensions", tok, nil, nil), http.StatusOK, "")

	if _, err := e.db.Pool.Exec(ctx, `UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	replicaDB, err := store.Open(ctx, e.pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer replicaDB.Close()
	replica := httptest.NewServer(api.New(api.Config{DB: replicaDB}).Handler())
	defer replica.Close()

	r := getAs(t, replica.URL+"/v1/extensions", tok)
	expect(t, r, http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(string(r.body), `"message":"token expired"`) {
		t.Fatalf("expired token reply: %s", r.body)
	}
	// An unknown token keeps its own message.
	r = getAs(t, replica.URL+"/v1/extensions", "ext_unknown")
	expect(t, r, http.StatusUnauthorized, "unauthorized")
	if !strings.Contains(string(r.body), `"message":"invalid token"`) {
		t.Fatalf("unknown token reply: %s", r.body)
	}
}

// getAs GETs url with a bearer token.
func getAs(t *testing.T, url, token string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}
