package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// registryd is a registryd child process built from this module.
type registryd struct {
	url, admin, service string
}

func startRegistryd(t *testing.T, dbURL, blobDir, trustPEM, keyFile string) *registryd {
	t.Helper()
	srv := testenv.Registryd(t, testenv.RegistrydOptions{
		DatabaseURL: dbURL, BundleStore: "file://" + blobDir, TrustBundle: trustPEM,
		SecretsKeyFile: keyFile, Args: []string{"--log-level", "warn"},
	})
	return &registryd{
		url:     srv.URL,
		admin:   srv.Token(t, "--role", "platform_admin"),
		service: srv.Token(t, "--role", "service"),
	}
}

func (r *registryd) call(t *testing.T, method, path string, hdr map[string]string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, r.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.admin)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestWithRealRegistryd runs runnerd against a real registryd (on a real
// PostgreSQL): the guest's KV round trip goes through registryd's storage
// API, secrets come from registryd's sealed envelope, execution records
// land in extension_execution_log, and revoking the version reaches the
// runner through the change feed within seconds.
func TestWithRealRegistryd(t *testing.T) {
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blobs")
	pub := bundletest.NewPublisher(t, "Acme Inc.")
	trust := filepath.Join(dir, "trust.pem")
	os.WriteFile(trust, pub.TrustPEM, 0o600)
	keyFile := filepath.Join(dir, "secrets.key")
	os.WriteFile(keyFile, []byte(secretbox.GenerateKey()+"\n"), 0o600)
	reg := startRegistryd(t, pg.URL(), blobDir, trust, keyFile)

	const ext = "com.acme.kvtest"
	manifest := `{"name":"` + ext + `","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1",` +
		`"capabilities":["storage.kv","secrets.get"],"api":{"endpoints":[` +
		`{"method":"GET","path":"/kv-roundtrip","handler":"dist/main"},{"method":"GET","path":"/secret","handler":"dist/main"}]}}`
	archive, hash := bundletest.Pack(t, map[string][]byte{"manifest.json": []byte(manifest), "dist/main.wasm": guests.GoGuest(t, "goguest")})
	sig, _ := signing.Sign(pub.Key, hash)
	if st, body := reg.call(t, "POST", "/v1/bundles", map[string]string{"Content-Type": "application/octet-stream",
		"X-Extedge-Signature": base64.StdEncoding.EncodeToString(sig.Marshal())}, archive); st != 201 {
		t.Fatalf("publish: %d %s", st, body)
	}
	if st, body := reg.call(t, "PUT", "/v1/tenants/tenant-a/installs/"+ext, nil,
		[]byte(`{"version":"1.0.0","granted_caps":["storage.kv","secrets.get"]}`)); st/100 != 2 {
		t.Fatalf("install: %d %s", st, body)
	}
	if st, body := reg.call(t, "PUT", "/v1/tenants/tenant-a/installs/"+ext+"/secrets", nil, []byte(`{"api_key":"s3cr3t"}`)); st/100 != 2 {
		t.Fatalf("secrets: %d %s", st, body)
	}
	res, _, _, err := registryapi.New(reg.url, reg.service, nil).Resolve(context.Background(), "tenant-a", ext, "")
	if err != nil {
		t.Fatal(err)
	}

	tokenFile := filepath.Join(dir, "runner.token")
	os.WriteFile(tokenFile, []byte("tok"), 0o600)
	svcFile := filepath.Join(dir, "service.token")
	os.WriteFile(svcFile, []byte(reg.service), 0o600)
	sock := filepath.Join(dir, "runner.sock")
	done := make(chan error, 1)
	go func() {
		done <- serve([]string{"--listen", "unix://" + sock, "--token-file", tokenFile, "--trust-bundle", trust,
			"--bundle-store", "file://" + blobDir, "--cache-dir", filepath.Join(dir, "cache"), "--registry", reg.url,
			"--registry-token-file", svcFile, "--secrets-key-file", keyFile, "--log-level", "error"})
	}()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	exec := func(path, query string) (int, execapi.Response, string) {
		env := execapi.Request{
			Context: execapi.Context{RequestID: "req-" + path[1:], TenantID: res.TenantID, ExtensionID: ext,
				InstallID: res.InstallID, VersionID: res.Version.ID, ContentHash: res.ContentHash},
			HTTP:           execapi.HTTPRequest{Method: "GET", Path: path, Query: map[string]string{"key": query}},
			Endpoint:       execapi.Endpoint{Method: "GET", Path: path, Handler: "dist/main"},
			Capabilities:   res.Capabilities,
			SecretEnvelope: res.SecretEnvelope,
		}
		b, _ := json.Marshal(env)
		req, _ := http.NewRequest("POST", "http://runner/v1/execute", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := client.Do(req)
		if err != nil {
			return 0, execapi.Response{}, err.Error()
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		var r execapi.Response
		json.Unmarshal(out, &r)
		return resp.StatusCode, r, string(out)
	}
	testenv.WaitFor(t, 15*time.Second, func() error {
		if st, _, body := exec("/secret", "api_key"); st != 200 {
			return fmt.Errorf("runner not serving yet: %d %s", st, body)
		}
		return nil
	})

	t.Run("kv round trip goes through registryd", func(t *testing.T) {
		st, r, body := exec("/kv-roundtrip", "a1")
		if st != 200 || r.Status != 200 || !strings.Contains(string(r.Body), `"put_revision":1`) || !strings.Contains(string(r.Body), `"get_revision":1`) {
			t.Fatalf("%d %s", st, body)
		}
		st, r, body = exec("/kv-roundtrip", "a1")
		if st != 200 || !strings.Contains(string(r.Body), `"put_revision":2`) {
			t.Fatalf("second put: %d %s", st, body)
		}
	})
	t.Run("secret comes from the sealed envelope", func(t *testing.T) {
		if st, r, body := exec("/secret", "api_key"); st != 200 || string(r.Body) != "s3cr3t" {
			t.Fatalf("%d %s", st, body)
		}
	})
	t.Run("execution records reach extension_execution_log", func(t *testing.T) {
		conn, err := pgx.Connect(context.Background(), pg.SuperuserURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		testenv.WaitFor(t, 15*time.Second, func() error {
			var n int
			if err := conn.QueryRow(context.Background(),
				`SELECT count(*) FROM extension_execution_log WHERE tenant_id = 'tenant-a' AND request_id = 'req-kv-roundtrip'`).Scan(&n); err != nil {
				return err
			}
			if n < 2 {
				return fmt.Errorf("%d records for req-kv-roundtrip", n)
			}
			return nil
		})
	})
	t.Run("revoking the version reaches the runner within seconds", func(t *testing.T) {
		if st, body := reg.call(t, "POST", "/v1/extensions/"+ext+"/versions/1.0.0/revoke", nil, []byte(`{"reason":"test"}`)); st/100 != 2 {
			t.Fatalf("revoke: %d %s", st, body)
		}
		start := time.Now()
		testenv.WaitFor(t, 10*time.Second, func() error {
			st, _, body := exec("/secret", "api_key")
			if st != 502 || !strings.Contains(body, execapi.CodeIntegrityFailed) {
				return fmt.Errorf("still served: %d %s", st, body)
			}
			return nil
		})
		t.Logf("revocation took effect after %v", time.Since(start))
	})

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
