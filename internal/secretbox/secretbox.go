// Package secretbox seals tenant secrets with AES-256-GCM (SPEC §7.6).
//
// One key-encryption key (KEK, 32 bytes from --secrets-key-file) is the root
// of a small key family: HKDF-SHA256 derives one subkey for secrets at rest in
// Postgres and one for the secret envelopes registryd hands to runners, so a
// value sealed for one purpose can never be opened as the other.
//
// A key file may hold several KEKs, one per line, so a key can be rotated
// without downtime: the first line seals, every line opens. `registryd
// secrets-key rotate` re-seals stored values under the first
// (ResealAtRest); then the old line can be dropped.
//
// An envelope is "ev1.<header>.<ciphertext>", both parts base64url without
// padding. The header is JSON {"t":tenant,"i":install,"e":expiry-unix} in
// clear text, so a runner can reject a wrong tenant or an expired envelope
// before decrypting, and it is the GCM additional data, so it cannot be
// altered or moved to another tenant, install or lifetime.
//
// The names and sizes of secrets (ValidKey, MaxValueSize) live here too, so
// registryd and extctl apply one rule.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// KeySize is the size of the key-encryption key.
const KeySize = 32

// Errors returned when opening.
var (
	ErrMalformed = errors.New("sealed value malformed")
	ErrOpen      = errors.New("sealed value does not authenticate")
	ErrExpired   = errors.New("secret envelope expired")
	ErrBinding   = errors.New("secret envelope bound to another tenant or install")
)

// GenerateKey returns a new KEK in the file format: standard base64, one line.
func GenerateKey() string {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(k)
}

// ParseKey decodes the key file format: one or more KEKs, one per line, in
// standard base64. Surrounding whitespace and blank lines are ignored. The
// first key seals; every key opens.
func ParseKey(s string) (*Keys, error) {
	k := &Keys{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("secrets key (line %d): not standard base64: %v", i+1, err)
		}
		if len(raw) != KeySize {
			return nil, fmt.Errorf("secrets key (line %d): %d bytes, want %d", i+1, len(raw), KeySize)
		}
		f, err := newFamily(raw)
		if err != nil {
			return nil, err
		}
		k.families = append(k.families, f)
	}
	if len(k.families) == 0 {
		return nil, errors.New("secrets key: no key (want 32 random bytes in standard base64; registryd secrets-key generate)")
	}
	return k, nil
}

// LoadKeyFile reads and parses a key file.
func LoadKeyFile(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading secrets key: %v", err)
	}
	return ParseKey(string(b))
}

// Keys holds the key families of one or more KEKs: the first seals, all
// open.
type Keys struct {
	families []family
}

// family is the AEADs derived from one KEK.
type family struct {
	atRest   cipher.AEAD
	envelope cipher.AEAD
}

// Combine returns keys that seal with primary's sealing key and open with
// every key of primary and others (for re-sealing under a new key).
func Combine(primary *Keys, others ...*Keys) *Keys {
	k := &Keys{families: append([]family(nil), primary.families...)}
	for _, o := range others {
		k.families = append(k.families, o.families...)
	}
	return k
}

func newFamily(kek []byte) (family, error) {
	atRest, err := deriveAEAD(kek, "extedge secrets at rest v1")
	if err != nil {
		return family{}, err
	}
	envelope, err := deriveAEAD(kek, "extedge secret envelope v1")
	if err != nil {
		return family{}, err
	}
	return family{atRest: atRest, envelope: envelope}, nil
}

func deriveAEAD(kek []byte, info string) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, kek, nil, info, KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving key: %v", err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var b64 = base64.RawURLEncoding

func seal(aead cipher.AEAD, plaintext, aad []byte) string {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return b64.EncodeToString(aead.Seal(nonce, nonce, plaintext, aad))
}

func open(aead cipher.AEAD, sealed string, aad []byte) ([]byte, error) {
	raw, err := b64.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrMalformed
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, raw[:n], raw[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// SealAtRest seals one secret value for storage under the first key. aad
// binds it to its row (registryd uses tenant, install and key name), so a
// ciphertext copied to another row does not open.
func (k *Keys) SealAtRest(plaintext []byte, aad string) string {
	return seal(k.families[0].atRest, plaintext, []byte(aad))
}

// OpenAtRest opens a value sealed by SealAtRest with the same aad under
// any of the keys.
func (k *Keys) OpenAtRest(sealed, aad string) ([]byte, error) {
	pt, _, err := k.openAtRest(sealed, aad)
	return pt, err
}

// openAtRest also reports which key opened the value.
func (k *Keys) openAtRest(sealed, aad string) ([]byte, int, error) {
	for i, f := range k.families {
		pt, err := open(f.atRest, sealed, []byte(aad))
		if !errors.Is(err, ErrOpen) {
			return pt, i, err
		}
	}
	return nil, -1, ErrOpen
}

// ResealAtRest returns sealed re-sealed under the first key, and whether
// that changed anything: a value already under the first key is returned
// as it is, so re-running a rotation rewrites nothing.
func (k *Keys) ResealAtRest(sealed, aad string) (string, bool, error) {
	pt, i, err := k.openAtRest(sealed, aad)
	if err != nil {
		return "", false, err
	}
	if i == 0 {
		return sealed, false, nil
	}
	return k.SealAtRest(pt, aad), true, nil
}

type envelopeHeader struct {
	Tenant  string `json:"t"`
	Install string `json:"i"`
	Expiry  int64  `json:"e"`
}

const envelopePrefix = "ev1."

// SealEnvelope seals an install's secrets for runners under the first key,
// bound to tenant, install and expiry.
func (k *Keys) SealEnvelope(tenant, install string, secrets map[string]string, expiry time.Time) (string, error) {
	hdr, err := json.Marshal(envelopeHeader{Tenant: tenant, Install: install, Expiry: expiry.Unix()})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(secrets)
	if err != nil {
		return "", err
	}
	h := b64.EncodeToString(hdr)
	return envelopePrefix + h + "." + seal(k.families[0].envelope, body, []byte(h)), nil
}

// OpenEnvelope opens an envelope for the given tenant and install under any
// of the keys; it fails for another tenant or install, after expiry, or when
// anything was altered.
func (k *Keys) OpenEnvelope(envelope, tenant, install string, now time.Time) (map[string]string, error) {
	rest, ok := strings.CutPrefix(envelope, envelopePrefix)
	if !ok {
		return nil, ErrMalformed
	}
	h, ct, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, ErrMalformed
	}
	hdrJSON, err := b64.DecodeString(h)
	if err != nil {
		return nil, ErrMalformed
	}
	var hdr envelopeHeader
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return nil, ErrMalformed
	}
	if hdr.Tenant != tenant || hdr.Install != install {
		return nil, ErrBinding
	}
	if now.Unix() >= hdr.Expiry {
		return nil, ErrExpired
	}
	var body []byte
	for _, f := range k.families {
		if body, err = open(f.envelope, ct, []byte(h)); !errors.Is(err, ErrOpen) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var secrets map[string]string
	if err := json.Unmarshal(body, &secrets); err != nil {
		return nil, ErrMalformed
	}
	return secrets, nil
}
