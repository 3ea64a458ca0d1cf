package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/testenv"
)

// TestInstanceReuseFromRegistryToRunner follows `instance_reuse` through
// the real components (SPEC §6.5): a platform admin turns it on in
// registryd, resolve carries it, the gateway puts it in the envelope, and
// runnerd serves the install's calls from a kept instance (its reuse
// metrics count hits); turned off again, calls get fresh instances and
// the reuse counters stand still.
func TestInstanceReuseFromRegistryToRunner(t *testing.T) {
	dir := t.TempDir()
	hash, storeURL, trustFile := helloBundle(t, dir)
	regStore := "file://" + filepath.Join(dir, "regstore")
	os.MkdirAll(filepath.Join(dir, "regstore"), 0o755)
	pg := testenv.Postgres(t)
	reg := testenv.Registryd(t, testenv.RegistrydOptions{DatabaseURL: pg.URL(), BundleStore: regStore, TrustBundle: trustFile})
	adminTok := reg.Token(t, "--role", "platform_admin")
	svcTok := reg.Token(t, "--role", "service")

	store, _ := blobstore.Open(storeURL)
	code, body := adminCall(t, "POST", reg.URL+"/v1/bundles", adminTok, bytes.NewReader(readBlob(t, store, blobstore.BundleKey(hash))),
		map[string]string{"Content-Type": "application/octet-stream", "X-Extedge-Signature": base64.StdEncoding.EncodeToString(readBlob(t, store, blobstore.SignatureKey(hash)))})
	if code != 201 && code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	putInstall := func(fields map[string]any) {
		t.Helper()
		b, _ := json.Marshal(fields)
		if code, body := adminCall(t, "PUT", reg.URL+"/v1/tenants/"+tenant+"/installs/"+ext, adminTok, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"}); code != 200 {
			t.Fatalf("install %s: %d %s", b, code, body)
		}
	}
	putInstall(map[string]any{"version": "0.1.0", "instance_reuse": true})

	sockDir, _ := os.MkdirTemp("", "e2reuse")
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
	call := func() {
		t.Helper()
		req, _ := http.NewRequest("GET", c.URL+"/api/ext/"+ext+"/hello", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("call: %d %s\n%s", resp.StatusCode, b, c.Log())
		}
	}
	counter := func(name string) int {
		t.Helper()
		resp, err := r0.Client(5 * time.Second).Get("http://runner/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("runner metrics lack %s", name)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}

	for range 5 {
		call()
	}
	if hits, misses := counter("extedge_runner_reuse_hits_total"), counter("extedge_runner_reuse_misses_total"); hits != 4 || misses != 1 {
		t.Fatalf("reuse hits %d, misses %d after 5 calls, want 4 and 1", hits, misses)
	}

	putInstall(map[string]any{"instance_reuse": false})
	// The change feed (or the 500ms TTL) brings the new install to the
	// gateway; from then on the envelope asks for no reuse.
	testenv.WaitFor(t, 5*time.Second, func() error {
		before := counter("extedge_runner_reuse_hits_total") + counter("extedge_runner_reuse_misses_total")
		call()
		if after := counter("extedge_runner_reuse_hits_total") + counter("extedge_runner_reuse_misses_total"); after != before {
			return fmt.Errorf("call still asked for reuse")
		}
		return nil
	})
}
