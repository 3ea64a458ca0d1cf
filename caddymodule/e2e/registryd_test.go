package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/testenv"
)

func adminCall(t *testing.T, method, url, token string, body io.Reader, hdr map[string]string) (int, string) {
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGatewayWithRealRegistryAndRunner publishes the hello bundle to a real
// registryd, installs it, calls it through Caddy and a real runnerd, then
// checks the change feed (disable → not_installed within seconds) and the
// staleness rule (registryd killed → cached install served until max_stale,
// then 503 registry_unavailable).
func TestGatewayWithRealRegistryAndRunner(t *testing.T) {
	dir := t.TempDir()
	hash, storeURL, trustFile := helloBundle(t, dir)
	// registryd writes the blobs itself at publish: give it an empty store.
	regStore := "file://" + filepath.Join(dir, "regstore")
	os.MkdirAll(filepath.Join(dir, "regstore"), 0o755)
	pg := testenv.Postgres(t)
	reg := testenv.Registryd(t, testenv.RegistrydOptions{DatabaseURL: pg.URL(), BundleStore: regStore, TrustBundle: trustFile})
	adminTok := reg.Token(t, "--role", "platform_admin")
	svcTok := reg.Token(t, "--role", "service")

	store, _ := blobstore.Open(storeURL)
	bundleBytes := readBlob(t, store, blobstore.BundleKey(hash))
	sig := readBlob(t, store, blobstore.SignatureKey(hash))
	code, body := adminCall(t, "POST", reg.URL+"/v1/bundles", adminTok, bytes.NewReader(bundleBytes),
		map[string]string{"Content-Type": "application/octet-stream", "X-Extedge-Signature": base64.StdEncoding.EncodeToString(sig)})
	if code != 201 && code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	install, _ := json.Marshal(map[string]any{"version": "0.1.0", "config": map[string]string{"greeting": "salut"}})
	if code, body := adminCall(t, "PUT", reg.URL+"/v1/tenants/"+tenant+"/installs/"+ext, adminTok, bytes.NewReader(install), map[string]string{"Content-Type": "application/json"}); code/100 != 2 {
		t.Fatalf("install: %d %s", code, body)
	}

	sockDir, _ := os.MkdirTemp("", "e2r")
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(v), 0o600)
		return p
	}
	runnerTokFile, svcTokFile, secret := write("runner.token", runnerToken), write("svc.token", svcTok), write("jwt.secret", jwtSecret)
	r0 := startRunnerd(t, sockDir, "r0", regStore, trustFile, runnerTokFile)
	c := testenv.Caddy(t, fmt.Sprintf(`	extedge {
		registry %s {
			token_file %s
			cache_ttl 500ms
			max_stale 4s
		}
		runners unix/%s {
			token_file %s
		}
		auth jwt {
			secret_file %s
		}
		timeout 20s
	}`, reg.URL, svcTokFile, r0.Socket, runnerTokFile, secret))
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenant": tenant, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	call := func() (int, string) {
		req, _ := http.NewRequest("GET", c.URL+"/api/ext/"+ext+"/hello", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(); code != 200 || !strings.Contains(body, `"message":"salut, world"`) {
		b, _ := os.ReadFile(reg.Log)
		t.Fatalf("call: %d %s\ncaddy:\n%s\nregistryd:\n%s", code, body, c.Log(), b)
	}

	feedEvents := func() int {
		st, _ := c.Admin("/extedge/status")
		m := regexp.MustCompile(`"feed_events":(\d+)`).FindSubmatch(st)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	eventsBefore := feedEvents()

	// Change feed: disabling the install is seen well within the TTL would
	// allow — we wait at most 3s, and cache_ttl alone would also do it, so
	// check the feed's effect in the status counters too.
	if code, body := adminCall(t, "POST", reg.URL+"/v1/tenants/"+tenant+"/installs/"+ext+"/disable", adminTok, nil, nil); code/100 != 2 {
		t.Fatalf("disable: %d %s", code, body)
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		if code, body := call(); code != 404 || !strings.Contains(body, `"not_installed"`) {
			return fmt.Errorf("after disable: %d %s", code, body)
		}
		return nil
	})
	if code, body := adminCall(t, "POST", reg.URL+"/v1/tenants/"+tenant+"/installs/"+ext+"/enable", adminTok, nil, nil); code/100 != 2 {
		t.Fatalf("enable: %d %s", code, body)
	}
	testenv.WaitFor(t, 3*time.Second, func() error {
		if code, body := call(); code != 200 {
			return fmt.Errorf("after enable: %d %s", code, body)
		}
		return nil
	})
	st, _ := c.Admin("/extedge/status")
	if !strings.Contains(string(st), `"feed_events":`) || strings.Contains(string(st), `"feed_events":0`) {
		t.Errorf("change feed events not seen by the gateway: %s", st)
	}

	// Both events must have arrived before the registry dies: an event
	// that lands after a refetch marks the entry invalid, and an
	// invalidated entry never serves stale (the call after the kill would
	// then rightly be 503).
	testenv.WaitFor(t, 5*time.Second, func() error {
		if n := feedEvents(); n < eventsBefore+2 {
			return fmt.Errorf("feed events %d, want at least %d", n, eventsBefore+2)
		}
		return nil
	})
	if code, body := call(); code != 200 {
		t.Fatalf("after the enable event: %d %s", code, body)
	}

	// Registry down: cached install keeps serving until max_stale (4s).
	reg.Kill()
	killed := time.Now()
	if code, body := call(); code != 200 {
		t.Fatalf("right after registryd died: %d %s", code, body)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		code, body := call()
		if code == 200 {
			return errors.New("still served from cache")
		}
		if code != 503 || !strings.Contains(body, `"registry_unavailable"`) {
			t.Fatalf("after the staleness bound: %d %s", code, body)
		}
		return nil
	})
	if el := time.Since(killed); el < 3*time.Second {
		t.Fatalf("failed closed after %v, before max_stale", el)
	}
}

func readBlob(t *testing.T, s blobstore.Store, key string) []byte {
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}
