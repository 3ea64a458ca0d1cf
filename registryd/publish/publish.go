// Package publish is registryd's publish pipeline (SPEC §7.3 POST
// /v1/bundles): spool the upload to a temporary file while hashing it,
// enforce the §2.1 bundle rules, validate the §4 manifest, verify the §3
// signature, write the blobs (create-only), and only then commit the rows in
// one transaction. A failure at any step leaves no rows behind; blobs already
// written are content-addressed and immutable, so a retry reuses them.
package publish

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/registryd/store"
)

// Codes produced by the pipeline besides the signing and store ones.
const (
	CodeInvalidBundle      = "invalid_bundle"
	CodeInvalidManifest    = "invalid_manifest"
	CodeBundleTooLarge     = "bundle_too_large"
	CodeStorageUnavailable = "storage_unavailable"
	CodeInvalidRequest     = "invalid_request"
)

// Config is the pipeline's configuration.
type Config struct {
	// Blobs receives bundle.tar.zst, manifest.json and SIGNATURE.
	Blobs blobstore.Store
	// Trust verifies signatures. Nil trusts nobody: every signed bundle is
	// untrusted_key.
	Trust *signing.TrustBundle
	// AllowUnsigned accepts bundles without a signature (development
	// only; every such publish is logged at warn level). A signature that
	// is present is still verified.
	AllowUnsigned bool
	// Limits are the §2.1 limits; Limits.MaxCompressed is also the largest
	// accepted upload. Default: bundle.DefaultLimits().
	Limits bundle.Limits
	// TempDir holds uploads while they are checked. Default: os.TempDir().
	TempDir string
	// MaxTimeoutMS is the platform maximum for endpoint timeout_ms.
	MaxTimeoutMS int
	// Now is the clock for certificate validity. Default: time.Now.
	Now func() time.Time
	// Log receives pipeline events. Default: no logging.
	Log *zap.Logger
}

// Pipeline publishes bundles into a blob store and a registry database.
type Pipeline struct {
	cfg Config
	db  *store.DB
}

// New returns a pipeline.
func New(db *store.DB, cfg Config) *Pipeline {
	d := bundle.DefaultLimits()
	if cfg.Limits.MaxCompressed <= 0 {
		cfg.Limits.MaxCompressed = d.MaxCompressed
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Pipeline{cfg: cfg, db: db}
}

// MaxUpload is the largest accepted bundle in bytes.
func (p *Pipeline) MaxUpload() int64 { return p.cfg.Limits.MaxCompressed }

// Result is a successful publish; Created is false when the same
// name+version+hash was already published (idempotent retry).
type Result = registryapi.PublishResult

// Publish runs the pipeline on an upload. contentLength is the declared
// body size (-1 when unknown); signatureHeader is the X-Extedge-Signature
// value (base64 of the SIGNATURE JSON, may be empty). Errors are
// *store.Error with a §7.3 code.
func (p *Pipeline) Publish(ctx context.Context, body io.Reader, contentLength int64, signatureHeader string) (*Result, error) {
	max := p.cfg.Limits.MaxCompressed
	if contentLength > max {
		return nil, tooLarge(max)
	}
	sigJSON, sig, err := p.parseSignature(signatureHeader)
	if err != nil {
		return nil, err
	}

	spooled, err := p.spool(body)
	if err != nil {
		return nil, err
	}
	defer spooled.Remove()
	hash := spooled.Hash
	// Refuse a signature for other bytes before parsing anything inside
	// them; the key and publisher checks follow once the manifest is read.
	if sig != nil && sig.ContentHash != hash {
		return nil, &store.Error{Code: signing.CodeSignatureInvalid,
			Message: fmt.Sprintf("the signature is for content hash %s, the upload hashes to %s", sig.ContentHash, hash)}
	}

	manifestJSON, files, err := p.checkBundle(spooled.Reader())
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(manifestJSON, manifest.Options{Files: files, MaxTimeoutMS: p.cfg.MaxTimeoutMS})
	if err != nil {
		var ve *manifest.ValidationError
		if errors.As(err, &ve) {
			return nil, &store.Error{Code: CodeInvalidManifest, Message: "manifest.json is invalid", Details: map[string]any{"issues": ve.Issues}}
		}
		return nil, &store.Error{Code: CodeInvalidManifest, Message: err.Error()}
	}

	if sig == nil {
		p.cfg.Log.Warn("PUBLISHING AN UNSIGNED BUNDLE (--allow-unsigned is on; never use it in production)",
			zap.String("extension", m.Name), zap.String("version", m.Version), zap.String("content_hash", hash))
	} else if err := p.cfg.Trust.Verify(sig, hash, m.Publisher, p.cfg.Now()); err != nil {
		return nil, verifyError(err)
	}

	if err := p.writeBlobs(ctx, spooled.Reader(), spooled.Size, hash, manifestJSON, sigJSON); err != nil {
		return nil, err
	}

	normalized, _ := json.Marshal(m)
	var endpoints []manifest.Endpoint
	if m.API != nil {
		endpoints = m.API.Endpoints
	}
	res, err := p.db.Publish(ctx, store.NewVersion{
		Name: m.Name, Publisher: m.Publisher, Version: m.Version,
		ContentHash: hash, Runtime: m.Runtime,
		Signature: compactJSON(sigJSON), Manifest: normalized,
		Capabilities: m.Capabilities, Endpoints: endpoints, UI: m.UI, SBOM: m.SBOM,
		StorageURL: storageURL(p.cfg.Blobs, blobstore.BundleKey(hash)), Size: spooled.Size,
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func tooLarge(max int64) error {
	return &store.Error{Code: CodeBundleTooLarge, Message: fmt.Sprintf("bundle is larger than %d bytes", max),
		Details: map[string]int64{"max_bytes": max}}
}

// parseSignature decodes the header. A missing signature is
// signature_missing unless unsigned bundles are allowed.
func (p *Pipeline) parseSignature(header string) ([]byte, *signing.Signature, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		if p.cfg.AllowUnsigned {
			return nil, nil, nil
		}
		return nil, nil, &store.Error{Code: signing.CodeSignatureMissing, Message: "no signature: send base64 of the SIGNATURE JSON in " + registryapi.SignatureHeader}
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(header); err != nil {
			return nil, nil, &store.Error{Code: signing.CodeSignatureInvalid, Message: registryapi.SignatureHeader + " is not base64"}
		}
	}
	sig, err := signing.ParseSignature(raw)
	if err != nil {
		return nil, nil, verifyError(err)
	}
	return raw, sig, nil
}

func verifyError(err error) error {
	code := signing.CodeOf(err)
	if code == "" {
		code = signing.CodeSignatureInvalid
	}
	msg := err.Error()
	var ve *signing.VerifyError
	if errors.As(err, &ve) {
		msg = ve.Msg
	}
	return &store.Error{Code: code, Message: msg}
}

// spool copies the body into a temporary file while hashing it
// (bundle.Spool, the hashing reader the runner and gateway share), stopping
// past the compressed-size limit.
func (p *Pipeline) spool(body io.Reader) (*bundle.Spooled, error) {
	max := p.cfg.Limits.MaxCompressed
	spooled, err := bundle.Spool(body, p.cfg.TempDir, p.cfg.Limits)
	var mbe *http.MaxBytesError
	switch {
	case bundle.RuleOf(err) == bundle.RuleCompressedTooLarge || errors.As(err, &mbe):
		return nil, tooLarge(max)
	case errors.Is(err, bundle.ErrSourceRead):
		return nil, &store.Error{Code: CodeInvalidRequest, Message: "reading the upload failed: " + strings.TrimPrefix(err.Error(), bundle.ErrSourceRead.Error()+": ")}
	case err != nil:
		return nil, fmt.Errorf("spooling the upload: %w", err)
	}
	if spooled.Size == 0 {
		spooled.Remove()
		return nil, &store.Error{Code: CodeInvalidBundle, Message: "empty upload", Details: map[string]string{"rule": bundle.RuleCorrupt}}
	}
	return spooled, nil
}

// checkBundle walks the spooled bundle under every §2.1 rule and returns
// manifest.json and a file-existence function for manifest validation.
func (p *Pipeline) checkBundle(f io.Reader) ([]byte, func(string) bool, error) {
	var manifestJSON []byte
	entries, err := bundle.Walk(f, p.cfg.Limits, func(e bundle.Entry, body io.Reader) error {
		if e.Name != bundle.ManifestName {
			return nil
		}
		if e.Size > manifest.MaxManifestBytes {
			return &store.Error{Code: CodeInvalidManifest, Message: "manifest.json is too large",
				Details: map[string]any{"issues": []manifest.Issue{{Path: "$", Message: fmt.Sprintf("larger than %d bytes", manifest.MaxManifestBytes)}}}}
		}
		b, err := io.ReadAll(body)
		manifestJSON = b
		return err
	})
	if err != nil {
		var se *store.Error
		if errors.As(err, &se) {
			return nil, nil, err
		}
		var re *bundle.RuleError
		if errors.As(err, &re) {
			details := map[string]string{"rule": re.Rule}
			if re.Name != "" {
				details["entry"] = fmt.Sprintf("%q", re.Name)
			}
			return nil, nil, &store.Error{Code: CodeInvalidBundle, Message: re.Error(), Details: details}
		}
		return nil, nil, &store.Error{Code: CodeInvalidBundle, Message: err.Error(), Details: map[string]string{"rule": bundle.RuleCorrupt}}
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name] = true
	}
	return manifestJSON, func(p string) bool { return names[p] }, nil
}

// writeBlobs stores the bundle, the manifest copy and the signature with
// create-only semantics. Any failure is storage_unavailable.
func (p *Pipeline) writeBlobs(ctx context.Context, f io.Reader, size int64, hash string, manifestJSON, sigJSON []byte) error {
	put := func(key string, r io.Reader, n int64) error {
		if err := p.cfg.Blobs.Put(ctx, key, r, n); err != nil {
			p.cfg.Log.Error("blob store write failed", zap.String("key", key), zap.Error(err))
			return &store.Error{Code: CodeStorageUnavailable, Message: "the bundle store is unavailable; retry later"}
		}
		return nil
	}
	if err := put(blobstore.BundleKey(hash), f, size); err != nil {
		return err
	}
	if err := put(blobstore.ManifestKey(hash), strings.NewReader(string(manifestJSON)), int64(len(manifestJSON))); err != nil {
		return err
	}
	if sigJSON != nil {
		if err := put(blobstore.SignatureKey(hash), strings.NewReader(string(sigJSON)), int64(len(sigJSON))); err != nil {
			return err
		}
	}
	return nil
}

func compactJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	var buf strings.Builder
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	out, _ := json.Marshal(v)
	buf.Write(out)
	return json.RawMessage(buf.String())
}

// storageURL is where the bundle lives, for operators: the store URL
// without query parameters, then the key.
func storageURL(s blobstore.Store, key string) string {
	base, _, _ := strings.Cut(s.String(), "?")
	return strings.TrimRight(base, "/") + "/" + key
}
