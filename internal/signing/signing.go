// Package signing implements publisher keys, detached bundle signatures and
// trust bundles (SPEC §3).
//
// A signature covers the ASCII message "extedge-bundle-v1\n" followed by the
// bundle's content hash. Ed25519 signs the message itself; ECDSA P-256 signs
// its SHA-256 digest (ASN.1 DER signature). Keys are identified by
// "sha256:" + hex(SHA-256(SubjectPublicKeyInfo DER)).
package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/extedge/extedge/internal/bundle"
)

// Signature algorithms, as spelled in SIGNATURE.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256-sha256"
)

// messagePrefix starts every signed message (domain separation: a signature
// made for a bundle can never be replayed as anything else).
const messagePrefix = "extedge-bundle-v1\n"

// maxSignatureSize bounds a SIGNATURE file; a real one is under 400 bytes.
const maxSignatureSize = 4 << 10

// Message returns the bytes signed for a content hash.
func Message(contentHash string) []byte {
	return []byte(messagePrefix + contentHash)
}

// GenerateKey returns a new publisher key for alg (AlgEd25519 or
// AlgECDSAP256; "" means AlgEd25519, the default).
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case AlgEd25519, "":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case AlgECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q (want %s or %s)", alg, AlgEd25519, AlgECDSAP256)
}

// Alg returns the algorithm of a supported public key: AlgEd25519 for
// Ed25519, AlgECDSAP256 for ECDSA on P-256; anything else is an error.
func Alg(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return "", errors.New("malformed ed25519 public key")
		}
		return AlgEd25519, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return "", fmt.Errorf("unsupported ecdsa curve %s (want P-256)", p.Curve.Params().Name)
		}
		return AlgECDSAP256, nil
	}
	return "", fmt.Errorf("unsupported public key type %T (want ed25519 or ecdsa p-256)", pub)
}

// MarshalPrivateKeyPEM encodes an Ed25519 or ECDSA P-256 private key as a
// PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(k crypto.Signer) ([]byte, error) {
	if _, err := Alg(k.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes the first "PRIVATE KEY" (PKCS#8) block of b and
// accepts only Ed25519 and ECDSA P-256 keys.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("parsing private key: no PRIVATE KEY PEM block")
		}
		if block.Type != "PRIVATE KEY" {
			continue
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing private key: %w", err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("parsing private key: %T cannot sign", key)
		}
		if _, err := Alg(signer.Public()); err != nil {
			return nil, fmt.Errorf("parsing private key: %w", err)
		}
		return signer, nil
	}
}

// MarshalPublicKeyPEM encodes pub as a "PUBLIC KEY" (SubjectPublicKeyInfo)
// PEM block, ready to paste into a trust bundle. A non-empty publisher is
// written as the PEM header "Publisher: <name>", binding the key to it.
func MarshalPublicKeyPEM(pub crypto.PublicKey, publisher string) ([]byte, error) {
	if _, err := Alg(pub); err != nil {
		return nil, err
	}
	if err := checkPublisher(publisher); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	block := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if publisher != "" {
		block.Headers = map[string]string{"Publisher": publisher}
	}
	return pem.EncodeToMemory(block), nil
}

// checkPublisher rejects names a PEM header cannot carry faithfully.
func checkPublisher(p string) error {
	if p != strings.TrimSpace(p) || strings.ContainsAny(p, "\r\n") {
		return fmt.Errorf("invalid publisher name %q: no surrounding spaces or line breaks", p)
	}
	return nil
}

// KeyID returns "sha256:" + hex(SHA-256(SubjectPublicKeyInfo DER)) of pub.
func KeyID(pub crypto.PublicKey) (string, error) {
	if _, err := Alg(pub); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return bundle.HashPrefix + hex.EncodeToString(sum[:]), nil
}

// Signature is the detached SIGNATURE document.
type Signature struct {
	V           int    `json:"v"`
	Alg         string `json:"alg"`
	KeyID       string `json:"key_id"`
	ContentHash string `json:"content_hash"`
	Sig         string `json:"sig"` // standard base64
}

// Sign signs contentHash (which must be a valid content hash) with k, an
// Ed25519 or ECDSA P-256 key (any crypto.Signer, so keys may live in an HSM).
func Sign(k crypto.Signer, contentHash string) (*Signature, error) {
	if !bundle.ValidHash(contentHash) {
		return nil, fmt.Errorf("signing: invalid content hash %q", contentHash)
	}
	pub := k.Public()
	alg, err := Alg(pub)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	keyID, err := KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	msg := Message(contentHash)
	var sig []byte
	switch alg {
	case AlgEd25519:
		sig, err = k.Sign(rand.Reader, msg, crypto.Hash(0))
	case AlgECDSAP256:
		digest := sha256.Sum256(msg)
		sig, err = k.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return &Signature{V: 1, Alg: alg, KeyID: keyID, ContentHash: contentHash, Sig: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Marshal returns the SIGNATURE file contents: compact JSON and a newline.
func (s *Signature) Marshal() []byte {
	b, _ := json.Marshal(s) // cannot fail: only strings and an int
	return append(b, '\n')
}

// ParseSignature strictly decodes a SIGNATURE document: one JSON object with
// exactly the known fields, no duplicates, v == 1, a known alg, well-formed
// key id and content hash, and a non-empty standard-base64 sig. Errors are
// *VerifyError with Code "signature_invalid".
func ParseSignature(b []byte) (*Signature, error) {
	invalid := func(format string, args ...any) error {
		return &VerifyError{Code: CodeSignatureInvalid, Msg: "malformed SIGNATURE: " + fmt.Sprintf(format, args...)}
	}
	if len(b) > maxSignatureSize {
		return nil, invalid("larger than %d bytes", maxSignatureSize)
	}
	if err := checkFields(b); err != nil {
		return nil, invalid("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Signature
	if err := dec.Decode(&s); err != nil {
		return nil, invalid("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("trailing data after the JSON object")
	}
	switch {
	case s.V != 1:
		return nil, invalid("unsupported version %d (want 1)", s.V)
	case s.Alg != AlgEd25519 && s.Alg != AlgECDSAP256:
		return nil, invalid("unknown alg %q", s.Alg)
	case !bundle.ValidHash(s.KeyID):
		return nil, invalid("key_id %q is not sha256:<64 hex>", s.KeyID)
	case !bundle.ValidHash(s.ContentHash):
		return nil, invalid("content_hash %q is not sha256:<64 hex>", s.ContentHash)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
	if err != nil || len(raw) == 0 {
		return nil, invalid("sig is not non-empty standard base64")
	}
	return &s, nil
}

// signatureFields are the exact field names of a SIGNATURE.
var signatureFields = map[string]bool{"v": true, "alg": true, "key_id": true, "content_hash": true, "sig": true}

// checkFields requires b to be a single JSON object whose keys are exactly
// spelled known fields, each at most once (encoding/json would match keys
// case-insensitively and silently keep the last duplicate).
func checkFields(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if !signatureFields[key] {
			return fmt.Errorf("unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("duplicate field %q", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
	}
	return nil
}
