// Package verified fetches a bundle from the blob store and puts it on disk
// only once it is proven (SPEC §2.1, §3, §6.3, §8.3): its bytes hash to the
// requested content hash, its SIGNATURE verifies against the trust bundle
// for the manifest's publisher, and its archive obeys every §2.1 rule. It is
// the one fetch-and-verify pipeline of runnerd's bundle cache and the
// gateway's UI cache.
//
// It is a package of its own, not part of package bundle, because
// internal/signing imports internal/bundle.
package verified

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/signing"
)

// ErrIntegrity is wrapped by every failure that is the bundle's fault: its
// bytes do not hash to the content hash, it is larger than the limits, its
// SIGNATURE is missing, malformed, untrusted or for another publisher
// (signing.CodeOf gives the code), its archive breaks a §2.1 rule
// (bundle.RuleOf gives the rule), or its manifest is invalid. Retrying does
// not help.
var ErrIntegrity = errors.New("bundle failed verification")

// ErrUnavailable is wrapped by failures to get the bundle at all: it is not
// in the blob store, or the store cannot be reached or broke off. A retry
// may succeed.
var ErrUnavailable = errors.New("bundle unavailable")

// maxSignatureRead bounds how much of a stored SIGNATURE is read;
// signing.ParseSignature rejects anything near it.
const maxSignatureRead = 64 << 10

// Options tune Fetch.
type Options struct {
	// Limits bound the download and the extraction; zero fields are the
	// §2.1 defaults (bundle.DefaultLimits).
	Limits bundle.Limits
	// Keep selects the files to extract; manifest.json is always
	// extracted. Default (nil): every file.
	Keep func(name string) bool
	// Now is the clock certificate validity is checked against. Required:
	// the pipeline reads no clock of its own.
	Now func() time.Time
}

// Bundle is a verified bundle extracted on disk.
type Bundle struct {
	// Hash is the content hash.
	Hash string
	// Trust is the fingerprint of the trust bundle that verified it
	// (signing.TrustBundle.Fingerprint).
	Trust string
	// Manifest is the bundle's parsed manifest.json.
	Manifest *manifest.Manifest
	// Files are the files extracted under the destination, with size and
	// SHA-256, in archive order.
	Files []bundle.Entry
}

// Fetch downloads the bundle of hash from store into a temporary file next
// to dest (counting and hashing while it streams, so an oversized bundle
// stops at the compressed limit), checks the content hash, fetches and
// parses its SIGNATURE, parses its manifest, verifies signature and
// publisher binding with trust at opts.Now(), and only then extracts the
// kept files under the §2.1 rules, renames them atomically into dest,
// which must not exist (bundle.Extract), and seals dest (Seal). On any
// failure nothing is left behind: no download, no partial tree, no dest.
//
// Errors wrap ErrIntegrity or ErrUnavailable (see there), keeping the
// underlying *signing.VerifyError, *bundle.RuleError or blob store error
// reachable with errors.As and errors.Is; any other error is a local
// failure (the disk, an existing dest, a missing Options.Now).
func Fetch(ctx context.Context, store blobstore.Store, trust *signing.TrustBundle, hash, dest string, opts Options) (*Bundle, error) {
	if opts.Now == nil {
		return nil, errors.New("fetching bundle: Options.Now is required")
	}
	if !bundle.ValidHash(hash) {
		return nil, fmt.Errorf("fetching bundle: invalid content hash %q", hash)
	}
	spooled, err := download(ctx, store, hash, filepath.Dir(dest), opts.Limits)
	if err != nil {
		return nil, err
	}
	defer spooled.Remove()
	if spooled.Hash != hash {
		return nil, fmt.Errorf("%w: bundle %s hashes to %s", ErrIntegrity, hash, spooled.Hash)
	}
	sig, err := fetchSignature(ctx, store, hash)
	if err != nil {
		return nil, err
	}
	m, err := readManifest(spooled.Reader(), opts.Limits)
	if err != nil {
		return nil, err
	}
	if err := trust.Verify(sig, hash, m.Publisher, opts.Now()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	keep := func(name string) bool {
		return name == bundle.ManifestName || opts.Keep == nil || opts.Keep(name)
	}
	entries, err := bundle.Extract(spooled.Reader(), dest, opts.Limits, keep)
	if err != nil {
		return nil, archiveError(err)
	}
	b := &Bundle{Hash: hash, Trust: trust.Fingerprint(), Manifest: m}
	for _, e := range entries {
		if keep(e.Name) {
			b.Files = append(b.Files, e)
		}
	}
	if err := Seal(dest, b); err != nil {
		os.RemoveAll(dest)
		return nil, err
	}
	return b, nil
}

// download spools the bundle archive of hash into dir.
func download(ctx context.Context, store blobstore.Store, hash, dir string, lim bundle.Limits) (*bundle.Spooled, error) {
	rc, err := store.Get(ctx, blobstore.BundleKey(hash))
	if err != nil {
		return nil, fmt.Errorf("%w: fetching bundle %s: %w", ErrUnavailable, hash, err)
	}
	defer rc.Close()
	spooled, err := bundle.Spool(rc, dir, lim)
	if err != nil {
		if errors.Is(err, bundle.ErrSourceRead) {
			return nil, fmt.Errorf("%w: downloading bundle %s: %w", ErrUnavailable, hash, err)
		}
		return nil, archiveError(err)
	}
	return spooled, nil
}

// fetchSignature returns the parsed SIGNATURE of hash, or nil when the
// store has none (signing.TrustBundle.Verify then reports it missing).
func fetchSignature(ctx context.Context, store blobstore.Store, hash string) (*signing.Signature, error) {
	rc, err := store.Get(ctx, blobstore.SignatureKey(hash))
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: fetching signature: %w", ErrUnavailable, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxSignatureRead))
	if err != nil {
		return nil, fmt.Errorf("%w: fetching signature: %w", ErrUnavailable, err)
	}
	sig, err := signing.ParseSignature(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return sig, nil
}

// readManifest reads and parses manifest.json from the archive in r.
func readManifest(r io.Reader, lim bundle.Limits) (*manifest.Manifest, error) {
	data, err := bundle.ReadEntry(r, bundle.ManifestName, lim)
	if err != nil {
		return nil, archiveError(err)
	}
	m, err := manifest.Parse(data, manifest.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return m, nil
}

// archiveError classifies an error of reading the spooled archive: a rule
// violation (a missing manifest.json included) is the bundle's fault, any
// other error is the local disk's.
func archiveError(err error) error {
	if bundle.RuleOf(err) != "" {
		return fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return err
}
