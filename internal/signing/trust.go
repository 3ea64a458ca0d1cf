package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/extedge/extedge/internal/bundle"
)

// Verification error codes (VerifyError.Code).
const (
	// CodeSignatureMissing: no SIGNATURE was supplied.
	CodeSignatureMissing = "signature_missing"
	// CodeSignatureInvalid: the SIGNATURE is malformed, its content hash is
	// not the bundle's, its alg does not match the key, or the signature
	// bytes do not verify.
	CodeSignatureInvalid = "signature_invalid"
	// CodeUntrustedKey: the key id is not in the trust bundle, or only
	// through certificates outside their validity period.
	CodeUntrustedKey = "untrusted_key"
	// CodePublisherMismatch: the key is bound to another publisher than the
	// manifest's.
	CodePublisherMismatch = "publisher_mismatch"
)

// VerifyError is a failed verification; Code is one of the Code* constants.
type VerifyError struct {
	Code string
	Msg  string
}

// Error implements error.
func (e *VerifyError) Error() string {
	return fmt.Sprintf("signature verification failed (%s): %s", e.Code, e.Msg)
}

// CodeOf returns the Code of the first *VerifyError in err's chain, or "".
func CodeOf(err error) string {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

// TrustBundle maps key ids to trusted public keys and the publisher each is
// bound to. Certificates are pinned as given: the key of a CERTIFICATE block
// is trusted within the certificate's validity period; no chain is built and
// no CA is consulted. A key may appear several times (for example a renewed
// certificate); verification succeeds if any of its entries accepts.
type TrustBundle struct {
	keys        map[string][]trustedKey
	fingerprint string
}

// trustedKey is one trust bundle entry.
type trustedKey struct {
	pub       crypto.PublicKey
	alg       string
	publisher string // "" = not bound to a publisher
	// cert is set for keys taken from a CERTIFICATE block.
	cert *x509.Certificate
}

// ParseTrustBundle reads PEM data holding any number of "PUBLIC KEY" blocks
// (each optionally bound to a publisher by a "Publisher: <name>" header) and
// "CERTIFICATE" blocks (bound to the Subject Organization, else CommonName).
// Text between blocks is ignored, as usual for PEM files. Other block types,
// unsupported key types and empty bundles are errors, so a misconfigured
// trust bundle fails at startup rather than at the first verification.
func ParseTrustBundle(pemData []byte) (*TrustBundle, error) {
	tb := &TrustBundle{keys: map[string][]trustedKey{}}
	rest := pemData
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		tk, err := parseTrustBlock(block)
		if err != nil {
			return nil, fmt.Errorf("trust bundle block %d (%s): %w", n, block.Type, err)
		}
		id, err := KeyID(tk.pub)
		if err != nil {
			return nil, fmt.Errorf("trust bundle block %d (%s): %w", n, block.Type, err)
		}
		tb.keys[id] = append(tb.keys[id], tk)
	}
	if len(tb.keys) == 0 {
		return nil, errors.New("trust bundle holds no PUBLIC KEY or CERTIFICATE block")
	}
	tb.fingerprint = fingerprint(tb.keys)
	return tb, nil
}

// Fingerprint identifies what the trust bundle trusts, as
// "sha256:<hex>": the SHA-256 of the sorted, deduplicated list of its
// entries, each a key id with its algorithm, the publisher it is bound to
// and, for a certificate, its validity period. Block order, comments
// between blocks, PEM line wrapping and certificate fields that do not
// change trust (serial, extensions) do not count, so two bundles trusting
// the same keys for the same publishers in the same periods share a
// fingerprint. Verification results kept on disk are bound to it (SPEC
// §8.3). A nil bundle has fingerprint "".
func (tb *TrustBundle) Fingerprint() string {
	if tb == nil {
		return ""
	}
	return tb.fingerprint
}

func fingerprint(keys map[string][]trustedKey) string {
	type canonicalEntry struct {
		KeyID     string `json:"key_id"`
		Alg       string `json:"alg"`
		Publisher string `json:"publisher"`
		NotBefore string `json:"not_before,omitempty"`
		NotAfter  string `json:"not_after,omitempty"`
	}
	var lines []string
	for id, entries := range keys {
		for _, tk := range entries {
			ce := canonicalEntry{KeyID: id, Alg: tk.alg, Publisher: tk.publisher}
			if tk.cert != nil {
				ce.NotBefore = tk.cert.NotBefore.UTC().Format(time.RFC3339)
				ce.NotAfter = tk.cert.NotAfter.UTC().Format(time.RFC3339)
			}
			b, _ := json.Marshal(ce)
			lines = append(lines, string(b))
		}
	}
	slices.Sort(lines)
	lines = slices.Compact(lines)
	sum := sha256.Sum256([]byte("extedge trust bundle v1\n" + strings.Join(lines, "\n")))
	return bundle.HashPrefix + hex.EncodeToString(sum[:])
}

func parseTrustBlock(block *pem.Block) (trustedKey, error) {
	switch block.Type {
	case "PUBLIC KEY":
		for h := range block.Headers {
			if h != "Publisher" {
				return trustedKey{}, fmt.Errorf("unknown PEM header %q (only Publisher)", h)
			}
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return trustedKey{}, err
		}
		alg, err := Alg(pub)
		if err != nil {
			return trustedKey{}, err
		}
		publisher, bound := block.Headers["Publisher"]
		publisher = strings.TrimSpace(publisher)
		if bound && publisher == "" {
			return trustedKey{}, errors.New("empty Publisher header")
		}
		return trustedKey{pub: pub, alg: alg, publisher: publisher}, nil
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return trustedKey{}, err
		}
		alg, err := Alg(cert.PublicKey)
		if err != nil {
			return trustedKey{}, err
		}
		publisher := cert.Subject.CommonName
		if len(cert.Subject.Organization) > 0 && cert.Subject.Organization[0] != "" {
			publisher = cert.Subject.Organization[0]
		}
		if publisher == "" {
			return trustedKey{}, errors.New("certificate has neither a subject organization nor a common name to bind a publisher")
		}
		return trustedKey{pub: cert.PublicKey, alg: alg, publisher: publisher, cert: cert}, nil
	}
	return trustedKey{}, errors.New("unsupported PEM block type (want PUBLIC KEY or CERTIFICATE)")
}

// LoadTrustBundle reads and parses the PEM file at path.
func LoadTrustBundle(path string) (*TrustBundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading trust bundle: %w", err)
	}
	tb, err := ParseTrustBundle(b)
	if err != nil {
		return nil, fmt.Errorf("loading trust bundle %s: %w", path, err)
	}
	return tb, nil
}

// Len returns the number of distinct trusted key ids.
func (tb *TrustBundle) Len() int {
	if tb == nil {
		return 0
	}
	return len(tb.keys)
}

// Verify checks sig against the content hash computed from the bundle bytes
// and the publisher named in the bundle's manifest, at time now (for
// certificate validity). The checks run in the §3 order: content hash, key
// in the trust bundle, signature bytes, publisher binding. It returns nil or
// a *VerifyError; a nil sig is CodeSignatureMissing, a nil or empty trust
// bundle trusts no key.
func (tb *TrustBundle) Verify(sig *Signature, computedHash, manifestPublisher string, now time.Time) error {
	fail := func(code, format string, args ...any) error {
		return &VerifyError{Code: code, Msg: fmt.Sprintf(format, args...)}
	}
	if sig == nil {
		return fail(CodeSignatureMissing, "bundle has no SIGNATURE")
	}
	if sig.V != 1 || (sig.Alg != AlgEd25519 && sig.Alg != AlgECDSAP256) {
		return fail(CodeSignatureInvalid, "unsupported signature version %d or alg %q", sig.V, sig.Alg)
	}
	if sig.ContentHash != computedHash {
		return fail(CodeSignatureInvalid, "signature is for content hash %s, bundle hashes to %s", sig.ContentHash, computedHash)
	}
	var entries []trustedKey
	if tb != nil {
		entries = tb.keys[sig.KeyID]
	}
	if len(entries) == 0 {
		return fail(CodeUntrustedKey, "key %s is not in the trust bundle", sig.KeyID)
	}
	var current []trustedKey
	var outside []string
	for _, tk := range entries {
		if tk.cert != nil && (now.Before(tk.cert.NotBefore) || now.After(tk.cert.NotAfter)) {
			outside = append(outside, fmt.Sprintf("valid %s to %s",
				tk.cert.NotBefore.UTC().Format(time.RFC3339), tk.cert.NotAfter.UTC().Format(time.RFC3339)))
			continue
		}
		current = append(current, tk)
	}
	if len(current) == 0 {
		return fail(CodeUntrustedKey, "key %s is trusted only by certificates outside their validity period (%s) at %s",
			sig.KeyID, strings.Join(outside, "; "), now.UTC().Format(time.RFC3339))
	}
	// All entries of one key id hold the same key.
	tk := current[0]
	if tk.alg != sig.Alg {
		return fail(CodeSignatureInvalid, "signature alg %s does not match the %s key %s", sig.Alg, tk.alg, sig.KeyID)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sig.Sig)
	if err != nil {
		return fail(CodeSignatureInvalid, "sig is not standard base64")
	}
	if !verifyBytes(tk.pub, Message(computedHash), raw) {
		return fail(CodeSignatureInvalid, "signature does not verify with key %s", sig.KeyID)
	}
	var bound []string
	for _, tk := range current {
		if tk.publisher == "" || tk.publisher == manifestPublisher {
			return nil
		}
		bound = append(bound, fmt.Sprintf("%q", tk.publisher))
	}
	return fail(CodePublisherMismatch, "key %s is bound to publisher %s, manifest names %q",
		sig.KeyID, strings.Join(bound, ", "), manifestPublisher)
}

func verifyBytes(pub crypto.PublicKey, msg, sig []byte) bool {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(p, msg, sig)
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(p, digest[:], sig)
	}
	return false
}
