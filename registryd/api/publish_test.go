package api_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
)

func TestPublishErrors(t *testing.T) {
	e := newEnv(t, envOptions{maxBundle: 256 << 10})
	good := packBundle(t, e.signer, manifestFor("com.acme.one", "1.0.0"), nil)

	otherKey, _ := signing.GenerateKey(signing.AlgEd25519)
	other := packBundle(t, e.signer, manifestFor("com.acme.one", "1.0.1"), nil)

	evilManifest := manifestFor("com.acme.evil", "1.0.0")
	evilManifest["publisher"] = "Evil Corp"
	evil := packBundle(t, e.signer, evilManifest, nil)

	badManifest := manifestFor("com.acme.bad", "1.0.0")
	badManifest["colour"] = "blue"
	badManifest["version"] = "one"
	bad := packBundle(t, e.signer, badManifest, nil)

	big := packBundle(t, e.signer, manifestFor("com.acme.big", "1.0.0"), map[string]string{"ui/big.bin": string(randomBytes(300 << 10))})

	cases := []struct {
		name   string
		token  string
		bundle testBundle
		status int
		code   string
	}{
		{"publish needs a token", "", good, 401, "unauthorized"},
		{"a wrong token is unauthorized", "ext_nope", good, 401, "unauthorized"},
		{"a tenant admin may not publish", e.tenantA, good, 403, "forbidden"},
		{"a service token may not publish", e.service, good, 403, "forbidden"},
		{"a bundle without signature is signature_missing", e.admin, testBundle{data: good.data}, 422, "signature_missing"},
		{"a signature of another bundle is signature_invalid", e.admin, testBundle{data: good.data, sig: other.sig}, 422, "signature_invalid"},
		{"a garbage signature is signature_invalid", e.admin, testBundle{data: good.data, sig: []byte(`{"v":1}`)}, 422, "signature_invalid"},
		{"a tampered bundle is signature_invalid", e.admin, testBundle{data: tamper(good.data), sig: good.sig}, 422, "signature_invalid"},
		{"a key outside the trust bundle is untrusted_key", e.admin, testBundle{data: good.data, sig: signBytes(t, otherKey, good.hash)}, 422, "untrusted_key"},
		{"a key cannot sign for another publisher", e.admin, evil, 422, "publisher_mismatch"},
		{"an invalid manifest is invalid_manifest", e.admin, bad, 400, "invalid_manifest"},
		{"a bundle over the size limit is bundle_too_large", e.admin, big, 413, "bundle_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, e.publish(c.token, c.bundle), c.status, c.code)
		})
	}

	t.Run("invalid_manifest lists every issue with a path", func(t *testing.T) {
		r := e.publish(e.admin, bad)
		issues, _ := r.details()["issues"].([]any)
		if len(issues) < 2 {
			t.Fatalf("want both issues reported, got %s", r.body)
		}
		for _, is := range issues {
			m, _ := is.(map[string]any)
			if m["path"] == "" || m["message"] == "" {
				t.Fatalf("issue without path/message: %v", is)
			}
		}
	})

	t.Run("first publish is 201, the same again is 200 with the same body", func(t *testing.T) {
		r1 := e.publish(e.admin, good)
		expect(t, r1, 201, "")
		r2 := e.publish(e.admin, good)
		expect(t, r2, 200, "")
		var p1, p2 registryapi.PublishResult
		r1.decode(t, &p1)
		r2.decode(t, &p2)
		if p1 != p2 || p1.ContentHash != good.hash || p1.Extension.Name != "com.acme.one" || p1.Version.Version != "1.0.0" || p1.Extension.Publisher != "Acme Inc." {
			t.Fatalf("bodies differ or wrong: %+v vs %+v", p1, p2)
		}
		for _, key := range []string{blobstore.BundleKey(good.hash), blobstore.ManifestKey(good.hash), blobstore.SignatureKey(good.hash)} {
			if _, err := e.blobs.Stat(context.Background(), key); err != nil {
				t.Fatalf("blob %s: %v", key, err)
			}
		}
	})

	t.Run("same name and version with another hash is version_exists", func(t *testing.T) {
		m := manifestFor("com.acme.one", "1.0.0")
		m["capabilities"] = []string{"http.fetch"}
		expect(t, e.publish(e.admin, packBundle(t, e.signer, m, nil)), 409, "version_exists")
	})

	t.Run("a signature header that is not base64 is signature_invalid", func(t *testing.T) {
		r := e.do(http.MethodPost, "/v1/bundles", e.admin, good.data, map[string]string{registryapi.SignatureHeader: "%%% not base64"})
		expect(t, r, 422, "signature_invalid")
	})
	t.Run("unpadded base64 is accepted", func(t *testing.T) {
		r := e.do(http.MethodPost, "/v1/bundles", e.admin, good.data, map[string]string{registryapi.SignatureHeader: base64.RawStdEncoding.EncodeToString(good.sig)})
		expect(t, r, 200, "")
	})
	t.Run("Content-Length over the limit is refused before reading", func(t *testing.T) {
		r := e.do(http.MethodPost, "/v1/bundles", e.admin, make([]byte, 300<<10), map[string]string{
			registryapi.SignatureHeader: base64.StdEncoding.EncodeToString(good.sig)})
		expect(t, r, 413, "bundle_too_large")
	})
}

func TestPublishMaliciousBundles(t *testing.T) {
	e := newEnv(t, envOptions{})
	dir := filepath.Join("..", "..", "internal", "bundle", "testdata", "malicious")
	cases := []struct{ file, rule string }{
		{"symlink", bundle.RuleEntryType},
		{"hardlink", bundle.RuleEntryType},
		{"fifo", bundle.RuleEntryType},
		{"char_device", bundle.RuleEntryType},
		{"absolute_path", bundle.RuleNameInvalid},
		{"dotdot_traversal", bundle.RuleNameInvalid},
		{"backslash", bundle.RuleNameInvalid},
		{"invalid_utf8", bundle.RuleNameInvalid},
		{"control_char", bundle.RuleNameInvalid},
		{"duplicate_file", bundle.RuleNameDuplicate},
		{"hidden_git", bundle.RuleNameHidden},
		{"bomb_zeros", bundle.RuleUncompressedTooLarge},
		{"file_too_large", bundle.RuleFileTooLarge},
		{"too_many_entries", bundle.RuleTooManyEntries},
		{"no_manifest", bundle.RuleManifestMissing},
		{"not_zstd", bundle.RuleCorrupt},
		{"truncated_zstd", bundle.RuleCorrupt},
	}
	for _, c := range cases {
		t.Run(c.file+" is invalid_bundle rule "+c.rule, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, c.file+".tar.zst"))
			if err != nil {
				t.Fatal(err)
			}
			hash, _, _ := bundle.HashReader(bytesReader(data))
			r := e.publish(e.admin, testBundle{data: data, hash: hash, sig: signBytes(t, e.signer, hash)})
			expect(t, r, 400, "invalid_bundle")
			if got := r.details()["rule"]; got != c.rule {
				t.Fatalf("details.rule = %v, want %s", got, c.rule)
			}
			if _, err := e.blobs.Stat(context.Background(), blobstore.BundleKey(hash)); err == nil {
				t.Fatal("a rejected bundle was written to the blob store")
			}
			b, v, _ := e.db.CountPublishRows(context.Background(), hash)
			if b+v != 0 {
				t.Fatal("a rejected bundle left rows")
			}
		})
	}
}

func TestPublishAllowUnsigned(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	e := newEnv(t, envOptions{allowUnsigned: true, log: zap.New(core)})
	b := packBundle(t, nil, manifestFor("com.acme.dev", "0.1.0"), nil)
	expect(t, e.publish(e.admin, b), 201, "")
	if logs.FilterMessageSnippet("UNSIGNED").Len() != 1 {
		t.Fatalf("an unsigned publish must be logged loudly; got %v", logs.All())
	}
	t.Run("a present signature is still verified", func(t *testing.T) {
		b2 := packBundle(t, nil, manifestFor("com.acme.dev", "0.2.0"), nil)
		otherKey, _ := signing.GenerateKey("")
		b2.sig = signBytes(t, otherKey, b2.hash)
		expect(t, e.publish(e.admin, b2), 422, "untrusted_key")
	})
}

// TestConcurrentPublish: 20 parallel publishes of one version give exactly
// one 201; the others are idempotent 200s with the same body.
func TestConcurrentPublish(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := packBundle(t, e.signer, manifestFor("com.acme.race", "1.0.0"), nil)
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.publish(e.admin, b).status
		}()
	}
	wg.Wait()
	created, ok := 0, 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 200:
			ok++
		default:
			t.Fatalf("unexpected status %d in %v", s, statuses)
		}
	}
	if created != 1 || ok != 19 {
		t.Fatalf("statuses %v: want one 201 and nineteen 200", statuses)
	}
	bundles, versions, err := e.db.CountPublishRows(context.Background(), b.hash)
	if err != nil || bundles != 1 || versions != 1 {
		t.Fatalf("rows: %d bundles, %d versions, %v", bundles, versions, err)
	}
}

func TestPublishLatestVersionAndCatalog(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, v := range []string{"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"} {
		e.mustPublish("com.acme.cat", v)
	}
	c := e.client(e.tenantA)
	ext, err := c.GetExtension(context.Background(), "com.acme.cat")
	if err != nil {
		t.Fatal(err)
	}
	if ext.LatestVersion != "2.0.0-rc.1" {
		t.Fatalf("latest_version = %s", ext.LatestVersion)
	}
	vs, err := c.ListVersions(context.Background(), "com.acme.cat")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, v := range vs {
		order = append(order, v.Version)
	}
	if want := "[2.0.0-rc.1 1.10.0 1.2.0 1.0.0]"; strconv.Quote(want) != strconv.Quote(fmtSlice(order)) {
		t.Fatalf("versions %v, want %s", order, want)
	}
	v, err := c.GetVersion(context.Background(), "com.acme.cat", "1.2.0")
	if err != nil || len(v.Manifest) == 0 || len(v.Signature) == 0 || len(v.Endpoints) != 2 || v.UI == nil {
		t.Fatalf("version = %+v, %v", v, err)
	}
	expect(t, e.do("GET", "/v1/extensions/com.acme.nope", e.admin, nil, nil), 404, "not_found")
	expect(t, e.do("GET", "/v1/extensions/com.acme.cat/versions/9.9.9", e.admin, nil, nil), 404, "not_found")
	list, err := c.ListExtensions(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
}
