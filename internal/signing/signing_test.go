package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/bundle"
)

const (
	hashA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	hashB = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// Golden key ids, cross-checked with
// `openssl pkey -in KEY -pubout -outform DER | sha256sum`.
var goldenKeyIDs = map[string]string{
	"golden_ed25519.key":    "sha256:646d6be49d9f0048f94f67749eca35156eed4f7a7be18e4fc4a94bfd44e300b0",
	"golden_ecdsa_p256.key": "sha256:26ae49b19381682cba9a5569deab2e9188a76924d29fa308ebf4dff850d6f883",
}

func TestKeyIDIsStable(t *testing.T) {
	for file, want := range goldenKeyIDs {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			k, err := ParsePrivateKeyPEM(b)
			if err != nil {
				t.Fatal(err)
			}
			id, err := KeyID(k.Public())
			if err != nil || id != want {
				t.Fatalf("KeyID = %s, %v; want %s", id, err, want)
			}
			// The id survives a round trip through the public PEM.
			pubPEM, err := MarshalPublicKeyPEM(k.Public(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			tb, err := ParseTrustBundle(pubPEM)
			if err != nil || tb.Len() != 1 {
				t.Fatalf("trust bundle: %v", err)
			}
			if _, ok := tb.keys[want]; !ok {
				t.Errorf("trust bundle does not index the key by %s", want)
			}
		})
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgEd25519, AlgECDSAP256, ""} {
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := MarshalPrivateKeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("%s: not a PKCS#8 PEM: %s", alg, b)
		}
		k2, err := ParsePrivateKeyPEM(b)
		if err != nil {
			t.Fatal(err)
		}
		id1, _ := KeyID(k.Public())
		id2, _ := KeyID(k2.Public())
		if id1 != id2 {
			t.Errorf("%s: key id changed across PEM round trip", alg)
		}
		pub, err := MarshalPublicKeyPEM(k.Public(), "Acme Corp")
		if err != nil || !strings.Contains(string(pub), "Publisher: Acme Corp\n") {
			t.Errorf("%s: public PEM %s, %v", alg, pub, err)
		}
		if pub, _ := MarshalPublicKeyPEM(k.Public(), ""); strings.Contains(string(pub), "Publisher") {
			t.Errorf("publisher header written for an empty publisher")
		}
	}
	if _, err := GenerateKey("rsa"); err == nil {
		t.Error("GenerateKey accepted rsa")
	}
	if _, err := MarshalPublicKeyPEM(ed25519.PublicKey(make([]byte, 32)), "a\nb"); err == nil {
		t.Error("publisher with a newline accepted")
	}
}

func TestUnsupportedKeysAreRejected(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, k := range map[string]crypto.Signer{"rsa": rsaKey, "ecdsa p-384": p384} {
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		if _, err := ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil {
			t.Errorf("%s private key accepted", name)
		}
		if _, err := Sign(k, hashA); err == nil {
			t.Errorf("%s key signed", name)
		}
		pubDER, _ := x509.MarshalPKIXPublicKey(k.Public())
		if _, err := ParseTrustBundle(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err == nil {
			t.Errorf("%s public key accepted into a trust bundle", name)
		}
	}
	if _, err := ParsePrivateKeyPEM([]byte("not pem")); err == nil {
		t.Error("garbage accepted as a private key")
	}
}

func TestSignedMessage(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	k := ed25519.NewKeyFromSeed(seed)
	sig, err := Sign(k, hashA)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sig.Sig)
	if !ed25519.Verify(k.Public().(ed25519.PublicKey), []byte("extedge-bundle-v1\n"+hashA), raw) {
		t.Fatal("signature does not cover extedge-bundle-v1\\n + content hash")
	}
	if _, err := Sign(k, "sha256:XYZ"); err == nil {
		t.Error("signed an invalid content hash")
	}
}

func TestParseSignature(t *testing.T) {
	k, _ := GenerateKey(AlgEd25519)
	good, _ := Sign(k, hashA)
	parsed, err := ParseSignature(good.Marshal())
	if err != nil || *parsed != *good {
		t.Fatalf("round trip: %+v, %v", parsed, err)
	}
	valid := string(good.Marshal())
	for _, c := range []struct{ why, doc string }{
		{"empty document is rejected", ""},
		{"non-object is rejected", `[1]`},
		{"truncated JSON is rejected", valid[:len(valid)/2]},
		{"unknown field is rejected", strings.Replace(valid, `{"v":1`, `{"v":1,"extra":true`, 1)},
		{"case-variant field is rejected", strings.Replace(valid, `"alg"`, `"ALG"`, 1)},
		{"duplicate field is rejected", strings.Replace(valid, `{"v":1`, `{"v":1,"v":1`, 1)},
		{"version 2 is rejected", strings.Replace(valid, `"v":1`, `"v":2`, 1)},
		{"string version is rejected", strings.Replace(valid, `"v":1`, `"v":"1"`, 1)},
		{"missing version is rejected", strings.Replace(valid, `"v":1,`, ``, 1)},
		{"unknown alg is rejected", strings.Replace(valid, AlgEd25519, "rsa-pss", 1)},
		{"malformed key id is rejected", strings.Replace(valid, good.KeyID, "sha256:abc", 1)},
		{"malformed content hash is rejected", strings.Replace(valid, hashA, "sha256:ABC", 1)},
		{"non-base64 sig is rejected", strings.Replace(valid, good.Sig, "!!!", 1)},
		{"empty sig is rejected", strings.Replace(valid, good.Sig, "", 1)},
		{"trailing data is rejected", valid + `{}`},
		{"null is rejected", `null`},
		{"huge document is rejected", `{"v":1,"alg":"` + strings.Repeat("a", 5000) + `"}`},
	} {
		t.Run(c.why, func(t *testing.T) {
			_, err := ParseSignature([]byte(c.doc))
			if CodeOf(err) != CodeSignatureInvalid {
				t.Fatalf("err = %v, want %s", err, CodeSignatureInvalid)
			}
		})
	}
}

// selfSigned returns a PEM certificate for key with the given subject and
// validity.
func selfSigned(t *testing.T, key crypto.Signer, subject pkix.Name, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pubPEM(t *testing.T, k crypto.Signer, publisher string) []byte {
	t.Helper()
	b, err := MarshalPublicKeyPEM(k.Public(), publisher)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	edKey, _ := GenerateKey(AlgEd25519)
	ecKey, _ := GenerateKey(AlgECDSAP256)
	unboundKey, _ := GenerateKey(AlgEd25519)
	strangerKey, _ := GenerateKey(AlgEd25519)
	certKey, _ := GenerateKey(AlgECDSAP256)
	cnCertKey, _ := GenerateKey(AlgEd25519)
	expiredKey, _ := GenerateKey(AlgEd25519)
	futureKey, _ := GenerateKey(AlgEd25519)

	var trust bytes.Buffer
	trust.WriteString("# extedge trust bundle\n")
	trust.Write(pubPEM(t, edKey, "acme"))
	trust.WriteString("comment between blocks\n")
	trust.Write(pubPEM(t, ecKey, "acme"))
	trust.Write(pubPEM(t, unboundKey, ""))
	trust.Write(selfSigned(t, certKey, pkix.Name{Organization: []string{"Globex"}, CommonName: "signer.globex.example"},
		now.Add(-24*time.Hour), now.Add(24*time.Hour)))
	trust.Write(selfSigned(t, cnCertKey, pkix.Name{CommonName: "initech"}, now.Add(-time.Hour), now.Add(time.Hour)))
	trust.Write(selfSigned(t, expiredKey, pkix.Name{Organization: []string{"acme"}}, now.Add(-48*time.Hour), now.Add(-time.Second)))
	trust.Write(selfSigned(t, futureKey, pkix.Name{Organization: []string{"acme"}}, now.Add(time.Hour), now.Add(48*time.Hour)))
	path := filepath.Join(t.TempDir(), "trust.pem")
	if err := os.WriteFile(path, trust.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := LoadTrustBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 7 {
		t.Fatalf("Len = %d, want 7", tb.Len())
	}

	sign := func(k crypto.Signer, h string) *Signature {
		s, err := Sign(k, h)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	withSig := func(s *Signature, mutate func(*Signature)) *Signature {
		c := *s
		mutate(&c)
		return &c
	}
	edSig := sign(edKey, hashA)
	ecSig := sign(ecKey, hashA)
	otherSig := sign(ecKey, hashB)

	for _, c := range []struct {
		why       string
		sig       *Signature
		hash      string
		publisher string
		at        time.Time
		code      string
	}{
		{"ed25519 signature by a bound key verifies", edSig, hashA, "acme", now, ""},
		{"ecdsa p-256 signature by a bound key verifies", ecSig, hashA, "acme", now, ""},
		{"unbound key may sign for any publisher", sign(unboundKey, hashA), hashA, "whoever", now, ""},
		{"certificate key verifies for its organization", sign(certKey, hashA), hashA, "Globex", now, ""},
		{"certificate without organization binds its common name", sign(cnCertKey, hashA), hashA, "initech", now, ""},
		{"certificate is honoured on its first second", sign(certKey, hashA), hashA, "Globex", now.Add(-24 * time.Hour), ""},
		{"missing signature is rejected", nil, hashA, "acme", now, CodeSignatureMissing},
		{"tampered bundle (hash mismatch) is rejected", edSig, hashB, "acme", now, CodeSignatureInvalid},
		{"signature replayed from another bundle is rejected", withSig(otherSig, func(s *Signature) { s.ContentHash = hashA }), hashA, "acme", now, CodeSignatureInvalid},
		{"wrong key (sig by another key under a trusted id) is rejected", withSig(sign(strangerKey, hashA), func(s *Signature) { s.KeyID = edSig.KeyID }), hashA, "acme", now, CodeSignatureInvalid},
		{"alg not matching the key is rejected", withSig(edSig, func(s *Signature) { s.Alg = AlgECDSAP256 }), hashA, "acme", now, CodeSignatureInvalid},
		{"flipped signature bit is rejected", withSig(edSig, func(s *Signature) {
			raw, _ := base64.StdEncoding.DecodeString(s.Sig)
			raw[0] ^= 1
			s.Sig = base64.StdEncoding.EncodeToString(raw)
		}), hashA, "acme", now, CodeSignatureInvalid},
		{"non-base64 signature is rejected", withSig(ecSig, func(s *Signature) { s.Sig = "%%%" }), hashA, "acme", now, CodeSignatureInvalid},
		{"unknown version is rejected", withSig(edSig, func(s *Signature) { s.V = 2 }), hashA, "acme", now, CodeSignatureInvalid},
		{"untrusted key is rejected", sign(strangerKey, hashA), hashA, "acme", now, CodeUntrustedKey},
		{"expired certificate is rejected", sign(expiredKey, hashA), hashA, "acme", now, CodeUntrustedKey},
		{"not-yet-valid certificate is rejected", sign(futureKey, hashA), hashA, "acme", now, CodeUntrustedKey},
		{"certificate key is rejected after expiry", sign(certKey, hashA), hashA, "Globex", now.Add(25 * time.Hour), CodeUntrustedKey},
		{"key bound to acme cannot sign for globex", edSig, hashA, "Globex", now, CodePublisherMismatch},
		{"ecdsa key bound to acme cannot sign for an empty publisher", ecSig, hashA, "", now, CodePublisherMismatch},
		{"certificate bound to Globex cannot sign for acme", sign(certKey, hashA), hashA, "acme", now, CodePublisherMismatch},
		{"publisher comparison is exact", edSig, hashA, "ACME", now, CodePublisherMismatch},
	} {
		t.Run(c.why, func(t *testing.T) {
			err := tb.Verify(c.sig, c.hash, c.publisher, c.at)
			if got := CodeOf(err); got != c.code {
				t.Fatalf("code = %q, want %q (err: %v)", got, c.code, err)
			}
		})
	}

	var nilTB *TrustBundle
	if CodeOf(nilTB.Verify(edSig, hashA, "acme", now)) != CodeUntrustedKey {
		t.Error("a nil trust bundle must trust nothing")
	}
}

func TestVerifyAfterParse(t *testing.T) {
	// End to end through the SIGNATURE bytes and a real content hash.
	k, _ := GenerateKey(AlgECDSAP256)
	h, _, _ := bundle.HashReader(strings.NewReader("bundle bytes"))
	sig, _ := Sign(k, h)
	parsed, err := ParseSignature(sig.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := ParseTrustBundle(pubPEM(t, k, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Verify(parsed, h, "acme", time.Now()); err != nil {
		t.Fatal(err)
	}
	tampered, _, _ := bundle.HashReader(strings.NewReader("bundle bytes!"))
	if CodeOf(tb.Verify(parsed, tampered, "acme", time.Now())) != CodeSignatureInvalid {
		t.Error("tampered bundle verified")
	}
}

func TestParseTrustBundleErrors(t *testing.T) {
	k, _ := GenerateKey(AlgEd25519)
	good := pubPEM(t, k, "acme")
	for _, c := range []struct{ why, pem string }{
		{"empty file is rejected", ""},
		{"text without blocks is rejected", "just a comment\n"},
		{"private key block is rejected", string(must(MarshalPrivateKeyPEM(k)))},
		{"unknown header is rejected", strings.Replace(string(good), "Publisher: acme", "Owner: acme", 1)},
		{"empty publisher header is rejected", strings.Replace(string(good), "Publisher: acme", "Publisher: ", 1)},
		{"garbage key bytes are rejected", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{"garbage certificate is rejected", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
	} {
		t.Run(c.why, func(t *testing.T) {
			if _, err := ParseTrustBundle([]byte(c.pem)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := LoadTrustBundle(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("missing file accepted")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestTrustBundleFingerprint(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	edKey, _ := GenerateKey(AlgEd25519)
	ecKey, _ := GenerateKey(AlgECDSAP256)
	certKey, _ := GenerateKey(AlgECDSAP256)
	otherKey, _ := GenerateKey(AlgEd25519)
	ed, ec := pubPEM(t, edKey, "acme"), pubPEM(t, ecKey, "")
	cert := selfSigned(t, certKey, pkix.Name{Organization: []string{"Globex"}}, now.Add(-time.Hour), now.Add(time.Hour))
	cat := func(blocks ...[]byte) []byte { return bytes.Join(blocks, []byte("\n")) }
	fp := func(pemData []byte) string {
		t.Helper()
		tb, err := ParseTrustBundle(pemData)
		if err != nil {
			t.Fatal(err)
		}
		return tb.Fingerprint()
	}
	base := fp(cat(ed, ec, cert))
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("fingerprint %q is not sha256:<hex>", base)
	}
	if (*TrustBundle)(nil).Fingerprint() != "" {
		t.Fatal("nil trust bundle has a fingerprint")
	}
	for _, c := range []struct {
		name string
		pem  []byte
		same bool
	}{
		{"same content parsed again is equal", cat(ed, ec, cert), true},
		{"block order does not count", cat(cert, ec, ed), true},
		{"comments between blocks do not count", cat([]byte("# trust\n"), ed, []byte("note\n"), ec, cert), true},
		{"a repeated block does not count", cat(ed, ec, cert, ed), true},
		{"a reissued certificate (new serial) with the same validity does not count",
			cat(ed, ec, selfSigned(t, certKey, pkix.Name{Organization: []string{"Globex"}}, now.Add(-time.Hour), now.Add(time.Hour))), true},
		{"an added key changes it", cat(ed, ec, cert, pubPEM(t, otherKey, "acme")), false},
		{"another key in place of one changes it", cat(ed, pubPEM(t, otherKey, ""), cert), false},
		{"a removed key changes it", cat(ed, cert), false},
		{"another publisher binding changes it", cat(pubPEM(t, edKey, "globex"), ec, cert), false},
		{"unbinding a key changes it", cat(pubPEM(t, edKey, ""), ec, cert), false},
		{"another certificate validity changes it",
			cat(ed, ec, selfSigned(t, certKey, pkix.Name{Organization: []string{"Globex"}}, now.Add(-time.Hour), now.Add(2*time.Hour))), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := fp(c.pem); (got == base) != c.same {
				t.Fatalf("fingerprint %s, base %s, want same = %v", got, base, c.same)
			}
		})
	}
	t.Run("loading from a file gives the parsed fingerprint", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "trust.pem")
		if err := os.WriteFile(path, cat(ec, cert, ed), 0o644); err != nil {
			t.Fatal(err)
		}
		tb, err := LoadTrustBundle(path)
		if err != nil {
			t.Fatal(err)
		}
		if tb.Fingerprint() != base {
			t.Fatalf("loaded %s, parsed %s", tb.Fingerprint(), base)
		}
	})
}
