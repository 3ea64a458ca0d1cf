// Package blobstore stores extedge's immutable, content-addressed objects
// (bundles, manifest copies, signatures; SPEC §2.3) in S3-compatible storage
// or a local directory, with the same write-once semantics on both.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotFound is returned (wrapped) by Get and Stat when no object has the key.
var ErrNotFound = errors.New("blob not found")

// ErrUnavailable is returned (wrapped) when the store cannot be reached or
// answers with a server-side failure, so callers can report "storage
// unavailable" instead of a generic error.
var ErrUnavailable = errors.New("blob store unavailable")

// ErrInvalidKey is returned (wrapped) for keys that break the key rules.
var ErrInvalidKey = errors.New("invalid blob key")

// Store is a write-once blob store.
type Store interface {
	// Put stores r (size bytes, -1 if unknown) under key with create-only
	// semantics: an existing object is success (nil), not an error and not
	// overwritten. With size >= 0 exactly size bytes are read; a shorter
	// reader is an error and nothing becomes visible.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get streams the object; ErrNotFound (wrapped) when absent. The reader
	// must be closed; for S3 it stays bound to ctx.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's size; ErrNotFound (wrapped) when absent.
	Stat(ctx context.Context, key string) (int64, error)
	// String is the store's URL without secrets, for logs.
	String() string
}

const hashPrefix = "sha256:"

// BundleKey is the key of a bundle archive: "sha256/<hex>/bundle.tar.zst".
// hash must be "sha256:" followed by 64 lowercase hex digits; otherwise the
// result is "", which every Store rejects as an invalid key.
func BundleKey(hash string) string { return hashKey(hash, "bundle.tar.zst") }

// ManifestKey is the key of a bundle's manifest copy: "sha256/<hex>/manifest.json".
func ManifestKey(hash string) string { return hashKey(hash, "manifest.json") }

// SignatureKey is the key of a bundle's detached signature: "sha256/<hex>/SIGNATURE".
func SignatureKey(hash string) string { return hashKey(hash, "SIGNATURE") }

func hashKey(hash, name string) string {
	hexPart, ok := strings.CutPrefix(hash, hashPrefix)
	if !ok || len(hexPart) != 64 {
		return ""
	}
	for _, c := range hexPart {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return "sha256/" + hexPart + "/" + name
}

// maxKeyLen keeps keys well inside S3's 1024-byte limit and path limits.
const maxKeyLen = 512

// validateKey checks a key against the rules both backends share: relative,
// slash-separated segments of [a-z0-9._-] (plus the upper-case file name
// SIGNATURE), no empty segment, and no segment starting with "." — which
// rules out "." and ".." and keeps keys apart from the local store's
// temporary files.
func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalidKey, maxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" {
			return fmt.Errorf("%w: %q has an empty segment or leading/trailing slash", ErrInvalidKey, key)
		}
		if seg[0] == '.' {
			return fmt.Errorf("%w: %q has a segment starting with a dot", ErrInvalidKey, key)
		}
		if seg == "SIGNATURE" {
			continue
		}
		for _, c := range seg {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q contains %q (allowed: a-z 0-9 . _ - /)", ErrInvalidKey, key, c)
			}
		}
	}
	return nil
}
