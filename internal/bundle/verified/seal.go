package verified

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
)

// The seal is how a verification result survives on disk (SPEC §8.3): a
// record, inside the extracted tree, of the content hash, the fingerprint
// of the trust bundle that verified it and every file's size and SHA-256.
// Open trusts a tree only if all of it still holds, so a restart with
// another trust bundle, or a file changed in the cache directory, costs a
// new Fetch instead of serving what was not verified. The seal is a
// checksum, not a MAC: it does not stop someone who can rewrite both a
// tree and its seal.

// sealName is the seal's file in the tree. Bundle names never have hidden
// segments (§2.1), so it cannot collide with a bundle file, and /ext-ui
// never serves it.
const sealName = ".seal.json"

// sealVersion is the format of the seal record.
const sealVersion = 1

// ErrSealBroken is wrapped by every failure of Open and Bundle.ReadFile
// that means the tree on disk is not, or no longer, what was verified: no
// seal, a seal for another content hash or trust bundle, or a file that is
// missing, added or changed. Fetch it again. A missing seal (no tree, or
// a tree never sealed) also wraps fs.ErrNotExist.
var ErrSealBroken = errors.New("verified tree does not match its seal")

// seal is the on-disk record.
type seal struct {
	V     int            `json:"v"`
	Hash  string         `json:"hash"`
	Trust string         `json:"trust"`
	Files []bundle.Entry `json:"files"`
}

// Seal writes the seal of b into dir, the tree b was extracted into,
// atomically (a temporary file renamed into place). Fetch seals every tree
// it extracts; Seal is exported for trees moved or built otherwise.
func Seal(dir string, b *Bundle) error {
	data, err := json.Marshal(seal{V: sealVersion, Hash: b.Hash, Trust: b.Trust, Files: b.Files})
	if err != nil {
		return fmt.Errorf("sealing bundle: %w", err)
	}
	f, err := os.CreateTemp(dir, sealName+".tmp-*")
	if err != nil {
		return fmt.Errorf("sealing bundle: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, sealName))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("sealing bundle: %w", err)
	}
	return nil
}

// SealedUnder reports whether the seal in dir is for hash and the trust
// bundle of fingerprint trust, without reading the files (Open does). It
// lets a cache drop, at start, trees another trust bundle verified.
func SealedUnder(dir, hash, trust string) bool {
	_, err := readSeal(dir, hash, trust)
	return err == nil
}

// Open returns the bundle sealed in dir if the seal is for hash and the
// trust bundle of fingerprint trust (signing.TrustBundle.Fingerprint) and
// the tree holds exactly the sealed files, as regular files with their
// sizes and SHA-256s; each file is read and hashed. Its manifest is parsed
// from the tree's manifest.json. Failures wrap ErrSealBroken.
func Open(dir, hash, trust string) (*Bundle, error) {
	s, err := readSeal(dir, hash, trust)
	if err != nil {
		return nil, err
	}
	broken := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrSealBroken, dir, fmt.Sprintf(format, args...))
	}
	sealed := make(map[string]bundle.Entry, len(s.Files))
	for _, e := range s.Files {
		sealed[e.Name] = e
	}
	onDisk := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case name == sealName:
			return nil
		case !d.Type().IsRegular():
			return broken("%s is not a regular file", name)
		}
		if _, ok := sealed[name]; !ok {
			return broken("%s is not in the seal", name)
		}
		onDisk++
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrSealBroken) {
			return nil, err
		}
		return nil, broken("%v", err)
	}
	if onDisk != len(sealed) {
		return nil, broken("%d of %d sealed files are missing", len(sealed)-onDisk, len(sealed))
	}
	for _, e := range s.Files {
		if e.Name == bundle.ManifestName {
			continue // read and checked below
		}
		if err := checkFile(filepath.Join(dir, filepath.FromSlash(e.Name)), e); err != nil {
			return nil, err
		}
	}
	mf, ok := sealed[bundle.ManifestName]
	if !ok {
		return nil, broken("no %s", bundle.ManifestName)
	}
	data, err := readChecked(filepath.Join(dir, bundle.ManifestName), mf)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(data, manifest.Options{})
	if err != nil {
		return nil, broken("%s: %v", bundle.ManifestName, err)
	}
	return &Bundle{Hash: s.Hash, Trust: s.Trust, Manifest: m, Files: s.Files}, nil
}

// ReadFile returns the bytes of file name of b from dir, the tree b is
// sealed in, only if they are still the ones verified (size and SHA-256):
// for reads long after Open, such as a module compiled on first use.
func (b *Bundle) ReadFile(dir, name string) ([]byte, error) {
	for _, e := range b.Files {
		if e.Name == name {
			return readChecked(filepath.Join(dir, filepath.FromSlash(name)), e)
		}
	}
	return nil, fmt.Errorf("%w: %s is not in bundle %s", ErrSealBroken, name, b.Hash)
}

func readSeal(dir, hash, trust string) (*seal, error) {
	data, err := os.ReadFile(filepath.Join(dir, sealName))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSealBroken, err)
	}
	var s seal
	if err := json.Unmarshal(data, &s); err != nil || s.V != sealVersion {
		return nil, fmt.Errorf("%w: %s: unreadable seal", ErrSealBroken, dir)
	}
	if s.Hash != hash {
		return nil, fmt.Errorf("%w: %s: sealed for %s, not %s", ErrSealBroken, dir, s.Hash, hash)
	}
	if trust == "" || s.Trust != trust {
		return nil, fmt.Errorf("%w: %s: verified by trust bundle %q, not %q", ErrSealBroken, dir, s.Trust, trust)
	}
	return &s, nil
}

// checkFile streams the file at p and compares it with e.
func checkFile(p string, e bundle.Entry) error {
	f, err := openRegular(p, e)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrSealBroken, e.Name, err)
	}
	return compare(e, n, h.Sum(nil))
}

// readChecked reads the file at p whole and compares it with e.
func readChecked(p string, e bundle.Entry) ([]byte, error) {
	f, err := openRegular(p, e)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than sealed shows a file that grew.
	data, err := io.ReadAll(io.LimitReader(f, e.Size+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSealBroken, e.Name, err)
	}
	sum := sha256.Sum256(data)
	if err := compare(e, int64(len(data)), sum[:]); err != nil {
		return nil, err
	}
	return data, nil
}

// openRegular opens p, refusing anything but a regular file (a symlink
// put in place of a sealed file included).
func openRegular(p string, e bundle.Entry) (*os.File, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSealBroken, e.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSealBroken, e.Name)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSealBroken, e.Name, err)
	}
	return f, nil
}

func compare(e bundle.Entry, size int64, sum []byte) error {
	if size != e.Size || hex.EncodeToString(sum) != e.SHA256 {
		return fmt.Errorf("%w: %s changed since it was verified", ErrSealBroken, e.Name)
	}
	return nil
}
