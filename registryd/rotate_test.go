package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/store"
)

// secretRow is one stored secret.
type secretRow struct{ tenant, install, key, sealed string }

// readSecrets reads every stored secret (platform scope), in key order.
func readSecrets(t *testing.T, db *store.DB) []secretRow {
	t.Helper()
	var out []secretRow
	err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), "SELECT set_config('extedge.tenant', '*', true)"); err != nil {
			return err
		}
		rows, err := tx.Query(context.Background(), `SELECT tenant_id, install_id::text, key, sealed FROM tenant_extension_secret ORDER BY 1, 2, 3`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (secretRow, error) {
			var x secretRow
			return x, r.Scan(&x.tenant, &x.install, &x.key, &x.sealed)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeKeyFile writes lines as a key file and returns its path.
func writeKeyFile(t *testing.T, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretsKeyRotate: `secrets-key rotate` re-seals every stored secret
// under the new key in batches; afterwards the new key alone opens them
// all, a rerun is a no-op, a run that failed half way leaves whole batches
// done and a rerun finishes it, and a value under neither key stops the run
// without printing any secret.
func TestSecretsKeyRotate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := testenv.Postgres(t)
	db, err := store.Open(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXTEDGE_DATABASE_URL", pg.URL())

	oldLine, newLine := secretbox.GenerateKey(), secretbox.GenerateKey()
	oldKeys, _ := secretbox.ParseKey(oldLine)
	newKeys, _ := secretbox.ParseKey(newLine)
	oldFile := writeKeyFile(t, "old.key", oldLine)
	newFile := writeKeyFile(t, "new.key", newLine)

	// Three tenants with five secrets each, sealed under the old key
	// through the store's own write path.
	tenants := []string{"t1", "t2", "t3"}
	installSecrets(t, db, tenants)
	plain := map[string]string{} // tenant/key → value
	putUnder := func(keys *secretbox.Keys, tenant string, secrets map[string]string) {
		t.Helper()
		_, err := db.PutSecrets(ctx, tenant, "com.acme.rotate", secrets, func(installID, key, value string) string {
			return keys.SealAtRest([]byte(value), store.SecretAAD(tenant, installID, key))
		})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range secrets {
			plain[tenant+"/"+k] = v
		}
	}
	for _, tn := range tenants {
		s := map[string]string{}
		for i := range 5 {
			s[fmt.Sprintf("KEY_%d", i)] = fmt.Sprintf("value-%s-%d", tn, i)
		}
		putUnder(oldKeys, tn, s)
	}

	openAllWith := func(keys *secretbox.Keys) error {
		for _, r := range readSecrets(t, db) {
			pt, err := keys.OpenAtRest(r.sealed, store.SecretAAD(r.tenant, r.install, r.key))
			if err != nil {
				return fmt.Errorf("%s/%s: %v", r.tenant, r.key, err)
			}
			if string(pt) != plain[r.tenant+"/"+r.key] {
				return fmt.Errorf("%s/%s opened to another value", r.tenant, r.key)
			}
		}
		return nil
	}
	if err := openAllWith(newKeys); err == nil {
		t.Fatal("the new key opens secrets before the rotation")
	}
	t.Run("a key file with old and new keys opens every secret", func(t *testing.T) {
		both, err := secretbox.LoadKeyFile(writeKeyFile(t, "both.key", newLine, oldLine))
		if err != nil {
			t.Fatal(err)
		}
		if err := openAllWith(both); err != nil {
			t.Fatal(err)
		}
	})

	rotate := []string{"secrets-key", "rotate", "--old-key-file", oldFile, "--new-key-file", newFile, "--batch-size", "4"}
	t.Run("rotate re-seals every secret in batches", func(t *testing.T) {
		out, errOut, code := runCLI(t, rotate...)
		if code != 0 || strings.TrimSpace(out) != "re-sealed 15 of 15 secrets in 4 batches" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		if err := openAllWith(newKeys); err != nil {
			t.Fatalf("after rotation the new key alone must open every secret: %v", err)
		}
		if err := openAllWith(oldKeys); err == nil {
			t.Fatal("the old key still opens the secrets after rotation")
		}
	})
	t.Run("a rerun is a no-op", func(t *testing.T) {
		before := readSecrets(t, db)
		out, errOut, code := runCLI(t, rotate...)
		if code != 0 || strings.TrimSpace(out) != "re-sealed 0 of 15 secrets in 4 batches" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		after := readSecrets(t, db)
		for i := range before {
			if before[i] != after[i] {
				t.Fatalf("the rerun rewrote %s/%s", after[i].tenant, after[i].key)
			}
		}
	})
	t.Run("a run that stops half way keeps whole batches and a rerun finishes it", func(t *testing.T) {
		// Back under the old key, then a rotation that fails on its sixth
		// value: the first batch of four is committed, the second rolled back.
		for _, tn := range tenants {
			s := map[string]string{}
			for i := range 5 {
				s[fmt.Sprintf("KEY_%d", i)] = plain[fmt.Sprintf("%s/KEY_%d", tn, i)]
			}
			putUnder(oldKeys, tn, s)
		}
		crash := errors.New("simulated crash")
		calls := 0
		keys := secretbox.Combine(newKeys, oldKeys)
		stats, err := db.ResealSecrets(ctx, 4, func(sealed, aad string) (string, bool, error) {
			if calls++; calls == 6 {
				return "", false, crash
			}
			return keys.ResealAtRest(sealed, aad)
		})
		if !errors.Is(err, crash) || stats.Resealed != 4 || stats.Batches != 1 {
			t.Fatalf("stats %+v, err %v; want one committed batch of 4", stats, err)
		}
		underNew := 0
		for _, r := range readSecrets(t, db) {
			if _, err := newKeys.OpenAtRest(r.sealed, store.SecretAAD(r.tenant, r.install, r.key)); err == nil {
				underNew++
			}
		}
		if underNew != 4 {
			t.Fatalf("%d secrets under the new key after the failed run, want 4 (the rolled-back batch must not count)", underNew)
		}
		out, errOut, code := runCLI(t, rotate...)
		if code != 0 || strings.TrimSpace(out) != "re-sealed 11 of 15 secrets in 4 batches" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		if err := openAllWith(newKeys); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a secret under neither key stops the run without showing it", func(t *testing.T) {
		putUnder(mustKeys(t), "t2", map[string]string{"STRAY": "stray-plaintext"})
		out, errOut, code := runCLI(t, rotate...)
		if code != 1 || !strings.Contains(errOut, `"STRAY"`) || strings.Contains(out+errOut, "stray-plaintext") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		for _, r := range readSecrets(t, db) {
			if strings.Contains(errOut, r.sealed) {
				t.Fatal("a sealed value appears in the error")
			}
		}
	})
	for name, args := range map[string][]string{
		"without --new-key-file":  {"secrets-key", "rotate", "--old-key-file", oldFile},
		"with a bad key file":     {"secrets-key", "rotate", "--old-key-file", oldFile, "--new-key-file", writeKeyFile(t, "bad.key", "!!!")},
		"with --batch-size 0":     {"secrets-key", "rotate", "--old-key-file", oldFile, "--new-key-file", newFile, "--batch-size", "0"},
		"with a missing key file": {"secrets-key", "rotate", "--old-key-file", "/nonexistent/key", "--new-key-file", newFile},
	} {
		t.Run(name+" fails with one line", func(t *testing.T) {
			_, errOut, code := runCLI(t, args...)
			if code != 1 || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("%d %q", code, errOut)
			}
		})
	}
}

func mustKeys(t *testing.T) *secretbox.Keys {
	t.Helper()
	k, err := secretbox.ParseKey(secretbox.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// installSecrets creates extension com.acme.rotate@1.0.0 and installs it for
// each tenant (rows only: no bundle is needed to hold secrets).
func installSecrets(t *testing.T, db *store.DB, tenants []string) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		hash := "sha256:" + strings.Repeat("a", 64)
		var reg, ver string
		if err := tx.QueryRow(ctx, `INSERT INTO extension_registry (name, publisher) VALUES ('com.acme.rotate', 'Acme Inc.') RETURNING id::text`).Scan(&reg); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO extension_bundle (content_hash, storage_url, size, runtime) VALUES ($1, 'file:///none', 1, 'wasm@1')`, hash); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO extension_version (registry_id, semver, content_hash, manifest, runtime) VALUES ($1, '1.0.0', $2, '{}', 'wasm@1') RETURNING id::text`, reg, hash).Scan(&ver); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT set_config('extedge.tenant', '*', true)"); err != nil {
			return err
		}
		for _, tn := range tenants {
			if _, err := tx.Exec(ctx, `INSERT INTO tenant_extension_install (tenant_id, registry_id, version_id) VALUES ($1, $2, $3)`, tn, reg, ver); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
