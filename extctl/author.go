package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/signing"
)

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func keygenCmd(fs *flagSet) runFunc {
	out := fs.String("out", "", "`DIR` to write publisher.key and publisher.pub into")
	alg := fs.String("alg", "ed25519", "key algorithm `ALG`: ed25519 or ecdsa-p256")
	publisher := fs.String("publisher", "", "publisher `NAME` bound to the key in publisher.pub")
	force := fs.Bool("force", false, "overwrite an existing key")
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if *out == "" || len(pos) > 0 {
			return usageError{"keygen needs --out DIR and no arguments"}
		}
		algName := map[string]string{"ed25519": signing.AlgEd25519, "ecdsa-p256": signing.AlgECDSAP256, signing.AlgECDSAP256: signing.AlgECDSAP256}[*alg]
		if algName == "" {
			return usageError{fmt.Sprintf("unknown --alg %q (want ed25519 or ecdsa-p256)", *alg)}
		}
		keyPath, pubPath := filepath.Join(*out, "publisher.key"), filepath.Join(*out, "publisher.pub")
		if !*force {
			if _, err := os.Stat(keyPath); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite a private key (use --force)", keyPath)
			}
		}
		key, err := signing.GenerateKey(algName)
		if err != nil {
			return err
		}
		keyPEM, err := signing.MarshalPrivateKeyPEM(key)
		if err != nil {
			return err
		}
		pubPEM, err := signing.MarshalPublicKeyPEM(key.Public(), *publisher)
		if err != nil {
			return err
		}
		keyID, err := signing.KeyID(key.Public())
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(map[string]string{"key_id": keyID, "alg": algName, "private_key": keyPath, "public_key": pubPath})
		}
		fmt.Fprintf(c.stdout, "%s\n", keyID)
		fmt.Fprintf(c.stderr, "wrote %s (keep it secret) and %s (add it to the registry's trust bundle)\n", keyPath, pubPath)
		return nil
	}
}

// dirFiles reports which bundle paths exist under dir, for manifest checks.
func dirFiles(dir string) func(string) bool {
	return func(p string) bool {
		if bundle.CheckName(p) != nil {
			return false
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
		return err == nil && fi.Mode().IsRegular()
	}
}

func packCmd(fs *flagSet) runFunc {
	out := fs.String("o", "", "bundle `FILE` to write, e.g. bundle.tar.zst")
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if len(pos) != 1 || *out == "" {
			return usageError{"pack needs one DIR and -o FILE"}
		}
		dir := pos[0]
		raw, err := os.ReadFile(filepath.Join(dir, bundle.ManifestName))
		if err != nil {
			return fmt.Errorf("reading manifest: %v", err)
		}
		m, err := manifest.Parse(raw, manifest.Options{Files: dirFiles(dir)})
		if err != nil {
			return fmt.Errorf("invalid manifest: %v", err)
		}
		hash, size, err := packAtomic(dir, *out)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(map[string]any{"content_hash": hash, "size": size, "output": *out, "name": m.Name, "version": m.Version})
		}
		fmt.Fprintln(c.stdout, hash)
		fmt.Fprintf(c.stderr, "packed %s@%s into %s (%d bytes)\n", m.Name, m.Version, *out, size)
		return nil
	}
}

// packAtomic packs into a temp file beside out and renames it into place,
// so a failed pack never leaves a truncated bundle behind.
func packAtomic(dir, out string) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".pack-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	hash, err := bundle.Pack(dir, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("packing %s: %v", dir, err)
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return "", 0, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", 0, err
	}
	return hash, fi.Size(), nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func signCmd(fs *flagSet) runFunc {
	keyPath := fs.String("key", "", "publisher private `KEY` file (PKCS#8 PEM, from extctl keygen)")
	out := fs.String("o", "", "`SIGNATURE` file to write (default: SIGNATURE beside the bundle)")
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if len(pos) != 1 || *keyPath == "" {
			return usageError{"sign needs one BUNDLE and --key KEY"}
		}
		if *out == "" {
			*out = filepath.Join(filepath.Dir(pos[0]), "SIGNATURE")
		}
		keyPEM, err := os.ReadFile(*keyPath)
		if err != nil {
			return fmt.Errorf("reading key: %v", err)
		}
		key, err := signing.ParsePrivateKeyPEM(keyPEM)
		if err != nil {
			return fmt.Errorf("reading key: %v", err)
		}
		hash, _, err := bundle.HashFile(pos[0])
		if err != nil {
			return fmt.Errorf("hashing bundle: %v", err)
		}
		sig, err := signing.Sign(key, hash)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(*out, sig.Marshal(), 0o644); err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(map[string]string{"content_hash": hash, "key_id": sig.KeyID, "alg": sig.Alg, "signature": *out})
		}
		fmt.Fprintf(c.stdout, "signed %s with %s into %s\n", hash, sig.KeyID, *out)
		return nil
	}
}

// readBundle validates a bundle file fully (§2.1 rules and the manifest
// against the bundle's own files) and returns its hash, index and manifest.
func readBundle(path string) (hash string, size int64, entries []bundle.Entry, m *manifest.Manifest, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, nil, nil, err
	}
	defer f.Close()
	hr := &hashingReader{r: f}
	var manifestRaw []byte
	entries, err = bundle.Walk(hr.tee(), bundle.DefaultLimits(), func(e bundle.Entry, body io.Reader) error {
		if e.Name == bundle.ManifestName {
			var err error
			manifestRaw, err = io.ReadAll(body)
			return err
		}
		return nil
	})
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("invalid bundle: %v", err)
	}
	// Walk may stop before EOF (zstd frame end); hash the rest too.
	if _, err := io.Copy(io.Discard, hr.tee()); err != nil {
		return "", 0, nil, nil, err
	}
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		have[e.Name] = true
	}
	m, err = manifest.Parse(manifestRaw, manifest.Options{Files: func(p string) bool { return have[p] }})
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("invalid manifest: %v", err)
	}
	hash, size = hr.sum()
	return hash, size, entries, m, nil
}

func verifyCmd(fs *flagSet) runFunc {
	sigPath := fs.String("signature", "", "detached `SIGNATURE` file (extctl sign writes one)")
	trustPath := fs.String("trust-bundle", "", "trust bundle `PEM`: the publisher keys to accept")
	fs.bindEnv("trust-bundle", "SIGNING_TRUST_BUNDLE")
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if len(pos) != 1 || *sigPath == "" || *trustPath == "" {
			return usageError{"verify needs one BUNDLE, --signature and --trust-bundle"}
		}
		tb, err := signing.LoadTrustBundle(*trustPath)
		if err != nil {
			return err
		}
		hash, _, _, m, err := readBundle(pos[0])
		if err != nil {
			return err
		}
		sigRaw, err := os.ReadFile(*sigPath)
		if err != nil {
			return fmt.Errorf("reading signature: %v", err)
		}
		sig, err := signing.ParseSignature(sigRaw)
		if err != nil {
			return &codedError{"signature_invalid", fmt.Sprintf("signature_invalid: %v", err)}
		}
		if err := tb.Verify(sig, hash, m.Publisher, time.Now()); err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(map[string]any{"ok": true, "content_hash": hash, "key_id": sig.KeyID, "publisher": m.Publisher, "name": m.Name, "version": m.Version})
		}
		fmt.Fprintf(c.stdout, "ok: %s %s@%s signed by %s (%s)\n", hash, m.Name, m.Version, m.Publisher, sig.KeyID)
		return nil
	}
}

// inspectOutput is the pinned --json shape of `extctl inspect` (SPEC §15).
type inspectOutput struct {
	ContentHash string             `json:"content_hash"`
	Size        int64              `json:"size"`
	Manifest    *manifest.Manifest `json:"manifest"`
	Files       []bundle.Entry     `json:"files"`
}

func inspectCmd(fs *flagSet) runFunc {
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if len(pos) != 1 {
			return usageError{"inspect needs one BUNDLE"}
		}
		hash, size, entries, m, err := readBundle(pos[0])
		if err != nil {
			return err
		}
		if entries == nil {
			entries = []bundle.Entry{}
		}
		if *asJSON {
			return c.printJSON(inspectOutput{ContentHash: hash, Size: size, Manifest: m, Files: entries})
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "%s@%s by %s\n", m.Name, m.Version, m.Publisher)
		fmt.Fprintf(&b, "content hash  %s\nsize          %d bytes\nruntime       %s\n", hash, size, m.Runtime)
		if len(m.Capabilities) > 0 {
			fmt.Fprintf(&b, "capabilities  %v\n", m.Capabilities)
		}
		if m.API != nil {
			for _, ep := range m.API.Endpoints {
				fmt.Fprintf(&b, "endpoint      %-6s %s -> %s\n", ep.Method, ep.Path, ep.Handler)
			}
		}
		fmt.Fprintf(&b, "files (%d):\n", len(entries))
		for _, e := range entries {
			fmt.Fprintf(&b, "  %10d  %s  %s\n", e.Size, e.SHA256[:12], e.Name)
		}
		_, err = c.stdout.Write(b.Bytes())
		return err
	}
}
