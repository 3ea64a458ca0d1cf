// Package bundletest builds real, signed bundles for the runner's tests:
// it packs a file tree with internal/bundle, signs it with a freshly
// generated publisher key and publishes it into a blob store with the §2.3
// layout, so the cache under test goes through the same fetch and verify
// path as production.
package bundletest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/signing"
)

// Publisher is a generated signing key and the trust bundle that trusts it.
type Publisher struct {
	Name     string
	Key      crypto.Signer
	TrustPEM []byte
	Trust    *signing.TrustBundle
}

// NewPublisher generates an Ed25519 key bound to publisher name.
func NewPublisher(t testing.TB, name string) *Publisher {
	t.Helper()
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pemData, err := signing.MarshalPublicKeyPEM(k.Public(), name)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := signing.ParseTrustBundle(pemData)
	if err != nil {
		t.Fatal(err)
	}
	return &Publisher{Name: name, Key: k, TrustPEM: pemData, Trust: tb}
}

// Manifest returns a minimal manifest for extension name with one GET
// endpoint per handler ("/h0", "/h1", …).
func Manifest(name, publisher string, handlers ...string) []byte {
	type ep struct {
		Method  string `json:"method"`
		Path    string `json:"path"`
		Handler string `json:"handler"`
	}
	var eps []ep
	for i, h := range handlers {
		eps = append(eps, ep{"GET", "/h" + string(rune('0'+i)), h})
	}
	m := map[string]any{"name": name, "publisher": publisher, "version": "1.0.0", "runtime": "wasm@1",
		"capabilities": []string{}, "api": map[string]any{"endpoints": eps}}
	b, _ := json.Marshal(m)
	return b
}

// Pack writes files into a temp tree and packs it; it returns the archive
// and its content hash.
func Pack(t testing.TB, files map[string][]byte) ([]byte, string) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	hash, err := bundle.Pack(dir, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), hash
}

// Publish packs files, signs the archive and stores bundle, manifest copy
// and SIGNATURE in store. It returns the content hash.
func (p *Publisher) Publish(t testing.TB, store blobstore.Store, files map[string][]byte) string {
	t.Helper()
	archive, hash := Pack(t, files)
	sig, err := signing.Sign(p.Key, hash)
	if err != nil {
		t.Fatal(err)
	}
	Put(t, store, hash, archive, files["manifest.json"], sig.Marshal())
	return hash
}

// Put stores the three objects of a bundle; nil parts are skipped (to
// build broken publications).
func Put(t testing.TB, store blobstore.Store, hash string, archive, manifest, sig []byte) {
	t.Helper()
	ctx := context.Background()
	for key, data := range map[string][]byte{
		blobstore.BundleKey(hash): archive, blobstore.ManifestKey(hash): manifest, blobstore.SignatureKey(hash): sig,
	} {
		if data == nil {
			continue
		}
		if err := store.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
}

// LocalStore is a file blob store in a temp dir.
func LocalStore(t testing.TB) *blobstore.Local {
	t.Helper()
	s, err := blobstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
