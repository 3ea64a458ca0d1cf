package verified_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/bundle/verified"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
)

const publisher = "Acme Inc."

var goodFiles = map[string][]byte{
	"manifest.json":  bundletest.Manifest("com.acme.test", publisher, "dist/handlers/ok"),
	"dist/h.wasm":    []byte("\x00asm\x01\x00\x00\x00"),
	"ui/index.html":  []byte("<!doctype html>"),
	"ui/big.bin":     []byte(strings.Repeat("x", 4096)),
	"precompiled/xx": []byte("native"),
}

// brokenStore fails the way a blob store does when it is down, or when a
// download breaks off half-way.
type brokenStore struct {
	blobstore.Store
	getErr  error // returned by Get
	readErr error // returned by the bundle reader after a few bytes
}

func (s *brokenStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if s.getErr != nil {
		return nil, s.getErr
	}
	rc, err := s.Store.Get(ctx, key)
	if err != nil || s.readErr == nil || !strings.HasSuffix(key, "bundle.tar.zst") {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 16), &failingReader{s.readErr}), rc}, nil
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "malicious", name+".tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetch(t *testing.T) {
	pub := bundletest.NewPublisher(t, publisher)
	archive, hash := bundletest.Pack(t, goodFiles)
	sign := func(k *bundletest.Publisher, h string) []byte {
		sig, err := signing.Sign(k.Key, h)
		if err != nil {
			t.Fatal(err)
		}
		return sig.Marshal()
	}
	tampered := append([]byte(nil), archive...)
	tampered[len(tampered)/2] ^= 0xff
	noManifest := readCorpus(t, "no_manifest")
	noManifestHash, _, _ := bundle.HashReader(bytes.NewReader(noManifest))
	badManifest, badManifestHash := bundletest.Pack(t, map[string][]byte{"manifest.json": []byte(`{"name":"x"}`)})
	stranger := bundletest.NewPublisher(t, publisher)
	evil := bundletest.NewPublisher(t, "Evil Corp")
	netErr := errors.New("connection reset by peer")

	tests := []struct {
		name    string
		archive []byte // stored under hash; nil: not stored
		hash    string // default: the good hash
		sig     []byte // stored SIGNATURE; nil: none
		trust   *signing.TrustBundle
		limits  bundle.Limits
		store   func(blobstore.Store) blobstore.Store
		is      error  // sentinel the error wraps; nil: success
		code    string // signing code the error carries
		rule    string // bundle rule the error carries
	}{
		{name: "signed bundle is extracted", archive: archive, sig: sign(pub, hash), trust: pub.Trust},
		{name: "tampered bytes fail the content hash", archive: tampered, sig: sign(pub, hash), trust: pub.Trust,
			is: verified.ErrIntegrity},
		{name: "unsigned bundle is refused", archive: archive, trust: pub.Trust,
			is: verified.ErrIntegrity, code: signing.CodeSignatureMissing},
		{name: "malformed SIGNATURE is refused", archive: archive, sig: []byte(`{"v":1}`), trust: pub.Trust,
			is: verified.ErrIntegrity, code: signing.CodeSignatureInvalid},
		{name: "signature for another hash is refused", archive: archive, sig: sign(pub, badManifestHash), trust: pub.Trust,
			is: verified.ErrIntegrity, code: signing.CodeSignatureInvalid},
		{name: "key outside the trust bundle is refused", archive: archive, sig: sign(stranger, hash), trust: pub.Trust,
			is: verified.ErrIntegrity, code: signing.CodeUntrustedKey},
		{name: "key bound to another publisher is refused", archive: archive, sig: sign(evil, hash), trust: evil.Trust,
			is: verified.ErrIntegrity, code: signing.CodePublisherMismatch},
		{name: "bundle missing from the store is unavailable", sig: sign(pub, hash), trust: pub.Trust,
			is: verified.ErrUnavailable},
		{name: "unreachable store is unavailable", archive: archive, sig: sign(pub, hash), trust: pub.Trust,
			store: func(s blobstore.Store) blobstore.Store {
				return &brokenStore{Store: s, getErr: blobstore.ErrUnavailable}
			},
			is: verified.ErrUnavailable},
		{name: "download broken off half-way is unavailable", archive: archive, sig: sign(pub, hash), trust: pub.Trust,
			store: func(s blobstore.Store) blobstore.Store { return &brokenStore{Store: s, readErr: netErr} },
			is:    verified.ErrUnavailable},
		{name: "bundle over the compressed limit is refused", archive: archive, sig: sign(pub, hash), trust: pub.Trust,
			limits: bundle.Limits{MaxCompressed: 100},
			is:     verified.ErrIntegrity, rule: bundle.RuleCompressedTooLarge},
		{name: "rule broken before the manifest is refused before verification", archive: archive, sig: sign(pub, hash), trust: pub.Trust,
			limits: bundle.Limits{MaxEntries: 1},
			is:     verified.ErrIntegrity, rule: bundle.RuleTooManyEntries},
		{name: "rule broken after the manifest stops the extraction", archive: archive, sig: sign(pub, hash), trust: pub.Trust,
			limits: bundle.Limits{MaxFile: 1024},
			is:     verified.ErrIntegrity, rule: bundle.RuleFileTooLarge},
		{name: "signed archive without manifest.json is refused", archive: noManifest, hash: noManifestHash,
			sig: sign(pub, noManifestHash), trust: pub.Trust,
			is: verified.ErrIntegrity, rule: bundle.RuleManifestMissing},
		{name: "invalid manifest is refused", archive: badManifest, hash: badManifestHash,
			sig: sign(pub, badManifestHash), trust: pub.Trust,
			is: verified.ErrIntegrity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hash
			if h == "" {
				h = hash
			}
			local := bundletest.LocalStore(t)
			bundletest.Put(t, local, h, tt.archive, nil, tt.sig)
			var store blobstore.Store = local
			if tt.store != nil {
				store = tt.store(local)
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, "tree")
			keepUI := func(name string) bool { return strings.HasPrefix(name, "ui/") }
			v, err := verified.Fetch(context.Background(), store, tt.trust, h, dest,
				verified.Options{Limits: tt.limits, Keep: keepUI, Now: time.Now})

			if tt.is == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkExtracted(t, v, dest)
				return
			}
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			if got := signing.CodeOf(err); got != tt.code {
				t.Errorf("signing code %q, want %q (err %v)", got, tt.code, err)
			}
			if got := bundle.RuleOf(err); got != tt.rule {
				t.Errorf("bundle rule %q, want %q (err %v)", got, tt.rule, err)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("failed fetch left %d entries next to dest (%s…)", len(left), left[0].Name())
			}
		})
	}
}

// checkExtracted: manifest.json and the kept ui/ files are on disk with
// their SHA-256, nothing else is, and the manifest is parsed.
func checkExtracted(t *testing.T, v *verified.Bundle, dest string) {
	t.Helper()
	if v.Manifest.Publisher != publisher || v.Manifest.Name != "com.acme.test" {
		t.Errorf("manifest %+v", v.Manifest)
	}
	var names []string
	for _, f := range v.Files {
		names = append(names, f.Name)
		got, _, err := bundle.HashFile(filepath.Join(dest, filepath.FromSlash(f.Name)))
		if err != nil || got != bundle.HashPrefix+f.SHA256 {
			t.Errorf("%s: on disk %s (%v), recorded %s", f.Name, got, err, f.SHA256)
		}
	}
	if want := "manifest.json ui/big.bin ui/index.html"; strings.Join(names, " ") != want {
		t.Errorf("files %q, want %q", names, want)
	}
	for _, p := range []string{"dist", "precompiled"} {
		if _, err := os.Stat(filepath.Join(dest, p)); !os.IsNotExist(err) {
			t.Errorf("%s/ was extracted; Keep did not select it", p)
		}
	}
	if left, _ := os.ReadDir(filepath.Dir(dest)); len(left) != 1 {
		t.Errorf("%d entries next to dest, want only dest (download not removed?)", len(left))
	}
}

func TestFetchNeedsAClock(t *testing.T) {
	pub := bundletest.NewPublisher(t, publisher)
	store := bundletest.LocalStore(t)
	hash := pub.Publish(t, store, goodFiles)
	dest := filepath.Join(t.TempDir(), "tree")
	_, err := verified.Fetch(context.Background(), store, pub.Trust, hash, dest, verified.Options{})
	if err == nil || errors.Is(err, verified.ErrIntegrity) || errors.Is(err, verified.ErrUnavailable) {
		t.Fatalf("err = %v, want a local error", err)
	}
}

func TestSeal(t *testing.T) {
	pub := bundletest.NewPublisher(t, publisher)
	other := bundletest.NewPublisher(t, publisher)
	archive, hash := bundletest.Pack(t, goodFiles)
	sig, err := signing.Sign(pub.Key, hash)
	if err != nil {
		t.Fatal(err)
	}
	store := bundletest.LocalStore(t)
	bundletest.Put(t, store, hash, archive, nil, sig.Marshal())
	// fetch extracts and seals a fresh tree of the good bundle.
	fetch := func(t *testing.T) (string, *verified.Bundle) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "tree")
		v, err := verified.Fetch(context.Background(), store, pub.Trust, hash, dest, verified.Options{Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		return dest, v
	}
	fp := pub.Trust.Fingerprint()
	sameSize := func(t *testing.T, p string) {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-1] ^= 0x01
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("fetched tree opens with its manifest and files", func(t *testing.T) {
		dest, v := fetch(t)
		if v.Trust != fp {
			t.Fatalf("Fetch recorded trust %q, want %q", v.Trust, fp)
		}
		got, err := verified.Open(dest, hash, fp)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash != hash || got.Trust != fp || got.Manifest.Name != v.Manifest.Name || len(got.Files) != len(v.Files) {
			t.Fatalf("opened %+v, fetched %+v", got, v)
		}
		if !verified.SealedUnder(dest, hash, fp) {
			t.Fatal("SealedUnder = false for the trust bundle that verified it")
		}
		data, err := got.ReadFile(dest, "ui/index.html")
		if err != nil || string(data) != string(goodFiles["ui/index.html"]) {
			t.Fatalf("ReadFile = %q, %v", data, err)
		}
	})
	for _, c := range []struct {
		name   string
		hash   string
		trust  string
		damage func(t *testing.T, dest string)
	}{
		{name: "another trust bundle is refused", trust: other.Trust.Fingerprint()},
		{name: "an empty trust fingerprint is refused", trust: ""},
		{name: "another content hash is refused", hash: "sha256:" + strings.Repeat("0", 64), trust: fp},
		{name: "a file changed with the same size is refused", trust: fp, damage: func(t *testing.T, dest string) {
			sameSize(t, filepath.Join(dest, "ui", "big.bin"))
		}},
		{name: "a manifest changed with the same size is refused", trust: fp, damage: func(t *testing.T, dest string) {
			sameSize(t, filepath.Join(dest, "manifest.json"))
		}},
		{name: "a missing file is refused", trust: fp, damage: func(t *testing.T, dest string) {
			os.Remove(filepath.Join(dest, "ui", "index.html"))
		}},
		{name: "an added file is refused", trust: fp, damage: func(t *testing.T, dest string) {
			os.WriteFile(filepath.Join(dest, "ui", "extra.js"), []byte("alert(1)"), 0o644)
		}},
		{name: "a symlink in place of a file is refused", trust: fp, damage: func(t *testing.T, dest string) {
			p := filepath.Join(dest, "ui", "big.bin")
			copyTo := filepath.Join(t.TempDir(), "big.bin")
			os.WriteFile(copyTo, goodFiles["ui/big.bin"], 0o644)
			os.Remove(p)
			if err := os.Symlink(copyTo, p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a missing seal is refused", trust: fp, damage: func(t *testing.T, dest string) {
			os.Remove(filepath.Join(dest, ".seal.json"))
		}},
		{name: "an unreadable seal is refused", trust: fp, damage: func(t *testing.T, dest string) {
			os.WriteFile(filepath.Join(dest, ".seal.json"), []byte("{"), 0o644)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest, _ := fetch(t)
			h := hash
			if c.hash != "" {
				h = c.hash
			}
			if c.damage != nil {
				c.damage(t, dest)
			}
			if _, err := verified.Open(dest, h, c.trust); !errors.Is(err, verified.ErrSealBroken) {
				t.Fatalf("Open: err = %v, want ErrSealBroken", err)
			}
		})
	}
	t.Run("a file changed after Open is refused by ReadFile", func(t *testing.T) {
		dest, _ := fetch(t)
		b, err := verified.Open(dest, hash, fp)
		if err != nil {
			t.Fatal(err)
		}
		sameSize(t, filepath.Join(dest, "ui", "index.html"))
		if data, err := b.ReadFile(dest, "ui/index.html"); !errors.Is(err, verified.ErrSealBroken) {
			t.Fatalf("ReadFile = %q, %v; want ErrSealBroken", data, err)
		}
		if _, err := b.ReadFile(dest, "ui/missing.js"); !errors.Is(err, verified.ErrSealBroken) {
			t.Fatalf("ReadFile of an unsealed name: %v", err)
		}
	})
	t.Run("SealedUnder is false for another trust bundle", func(t *testing.T) {
		dest, _ := fetch(t)
		if verified.SealedUnder(dest, hash, other.Trust.Fingerprint()) {
			t.Fatal("SealedUnder = true for another trust bundle")
		}
	})
}
