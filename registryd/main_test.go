package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/registryd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestSecretsKeyGenerate(t *testing.T) {
	out, _, code := runCLI(t, "secrets-key", "generate")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if code != 0 || err != nil || len(raw) != 32 || strings.Count(out, "\n") != 1 {
		t.Fatalf("secrets-key generate printed %q (code %d, %v)", out, code, err)
	}
}

func TestMigrateAndTokenCreate(t *testing.T) {
	pg := testenv.Postgres(t)
	out, errOut, code := runCLI(t, "migrate", "--database-url", pg.URL())
	if code != 0 || !strings.Contains(out, "applied 0001_init") {
		t.Fatalf("migrate: %d %q %q", code, out, errOut)
	}
	t.Setenv("EXTEDGE_DATABASE_URL", pg.URL())
	out, _, code = runCLI(t, "migrate")
	if code != 0 || strings.TrimSpace(out) != "schema up to date" {
		t.Fatalf("second migrate: %d %q", code, out)
	}

	t.Run("token create prints only the token, one line", func(t *testing.T) {
		out, errOut, code := runCLI(t, "token", "create", "--role", "service")
		if code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ext_") || strings.Contains(strings.TrimSpace(out), " ") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		db, err := store.Open(context.Background(), pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		p, err := db.Authenticate(context.Background(), strings.TrimSpace(out))
		if err != nil || p.Role != "service" {
			t.Fatalf("token does not authenticate: %+v %v", p, err)
		}
		var stored int
		err = db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_token WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'", strings.TrimSpace(out)).Scan(&stored)
		if err != nil || stored != 0 {
			t.Fatalf("token stored in clear (%d, %v)", stored, err)
		}
	})
	t.Run("token create --json", func(t *testing.T) {
		out, _, code := runCLI(t, "token", "create", "--role", "tenant_admin", "--tenant", "t-1", "--json")
		var v map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["role"] != "tenant_admin" || v["tenant"] != "t-1" || v["id"] == "" || v["token"] == "" {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("token revoke stops the token", func(t *testing.T) {
		out, _, _ := runCLI(t, "token", "create", "--role", "service", "--json")
		var v map[string]string
		json.Unmarshal([]byte(out), &v)
		if _, _, code := runCLI(t, "token", "revoke", v["id"]); code != 0 {
			t.Fatal("revoke failed")
		}
		db, err := store.Open(context.Background(), pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Authenticate(context.Background(), v["token"]); err != store.ErrBadToken {
			t.Fatalf("revoked token authenticates: %v", err)
		}
		list, _, _ := runCLI(t, "token", "list")
		if !strings.Contains(list, v["id"]) || !strings.Contains(list, "revoked") || strings.Contains(list, v["token"]) {
			t.Fatalf("token list: %q", list)
		}
		if _, _, code := runCLI(t, "token", "revoke", "00000000-0000-0000-0000-000000000000"); code != 1 {
			t.Fatal("revoking an unknown id should fail")
		}
	})
	t.Run("token create --expires sets the expiry, token list shows it", func(t *testing.T) {
		before := time.Now().Add(720 * time.Hour).Add(-time.Minute)
		out, errOut, code := runCLI(t, "token", "create", "--role", "service", "--expires", "720h", "--json")
		var v struct {
			Token, ID string
			ExpiresAt time.Time `json:"expires_at"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.ExpiresAt.Before(before) || v.ExpiresAt.After(before.Add(2*time.Minute)) {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		list, _, _ := runCLI(t, "token", "list")
		want := v.ID + "\tservice\t-\t-\t" + v.ExpiresAt.UTC().Format(time.RFC3339) + "\tactive\n"
		if !strings.Contains(list, want) || !strings.Contains(list, "\tnever\t") {
			t.Fatalf("token list %q does not contain %q (and a never-expiring token)", list, want)
		}
		db, err := store.Open(context.Background(), pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Pool.Exec(context.Background(), `UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = $1`, v.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Authenticate(context.Background(), v.Token); err != store.ErrTokenExpired {
			t.Fatalf("expired token: err = %v, want ErrTokenExpired", err)
		}
		list, _, _ = runCLI(t, "token", "list")
		if !strings.Contains(list, v.ID+"\tservice\t") || !strings.Contains(list, "\texpired\n") {
			t.Fatalf("token list after expiry: %q", list)
		}
		var js []store.TokenInfo
		out, _, _ = runCLI(t, "token", "list", "--json")
		if json.Unmarshal([]byte(out), &js) != nil {
			t.Fatalf("token list --json: %q", out)
		}
		found := false
		for _, ti := range js {
			found = found || ti.ID == v.ID && ti.ExpiresAt != nil
		}
		if !found {
			t.Fatalf("token list --json has no expires_at for %s: %s", v.ID, out)
		}
	})
	bad := [][]string{
		{"token", "create", "--role", "service", "--expires", "-1h"},
		{"token", "create", "--role", "root"},
		{"token", "create", "--role", "tenant_admin"},
		{"token", "create", "--role", "service", "--tenant", "t"},
		{"token", "create", "--role", "tenant_admin", "--tenant", "bad tenant!"},
	}
	for _, args := range bad {
		t.Run(strings.Join(args, " ")+" fails with one line", func(t *testing.T) {
			_, errOut, code := runCLI(t, args...)
			if code == 0 || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("%d %q", code, errOut)
			}
		})
	}
}

// TestServeEmbedded runs the real binary in embedded mode: it initialises
// PostgreSQL, serves, and on SIGTERM stops it cleanly (no postgres left).
func TestServeEmbedded(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go toolchain needed to build registryd")
	}
	tmp, err := os.MkdirTemp("", "registryd-embedded-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755) // the postgres user must reach tmp/pg when tests run as root
	bin := filepath.Join(tmp, "registryd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pgDir := filepath.Join(tmp, "pg")
	tok, err := exec.Command(bin, "token", "create", "--role", "platform_admin", "--database-url", "embedded:"+pgDir).Output()
	if err != nil {
		t.Fatalf("token create (embedded): %v", err)
	}
	port := testenv.FreePort(t)
	keyFile := filepath.Join(tmp, "key")
	os.WriteFile(keyFile, []byte(strings.Repeat("A", 43)+"=\n"), 0o600)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--database-url", "embedded:"+pgDir, "--bundle-store", "file://"+filepath.Join(tmp, "blobs"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--secrets-key-file", keyFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.WaitFor(t, 60*time.Second, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	c := registryapi.New(base, strings.TrimSpace(string(tok)), nil)
	if _, err := c.ListExtensions(context.Background()); err != nil {
		t.Fatalf("token from `token create` does not work against serve: %v", err)
	}
	pidBytes, err := os.ReadFile(filepath.Join(pgDir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pgPid int
	fmt.Sscan(string(pidBytes), &pgPid)

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit on SIGTERM\n%s", logs.String())
	}
	if syscall.Kill(pgPid, 0) == nil {
		t.Fatalf("postgres (pid %d) still running after registryd exited", pgPid)
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(tok))) {
		t.Fatal("the token appears in the logs")
	}
}
