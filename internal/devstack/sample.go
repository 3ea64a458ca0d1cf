package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
)

// publishSample builds examples/agreements (Go guest → wasm), packs and
// signs it, publishes it (idempotent: a re-run gets 200 and the same hash)
// and installs it for the demo tenant with its grants, config, egress
// allowlist and the vendor API key as a secret.
func (st *Stack) publishSample(ctx context.Context) (string, error) {
	src := filepath.Join(st.opts.Root, "examples", "agreements")
	stage := filepath.Join(st.opts.DataDir, "build", "bundle")
	if err := os.RemoveAll(stage); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(stage, "dist"), 0o755); err != nil {
		return "", err
	}
	st.logf("building the sample extension (GOOS=wasip1 GOARCH=wasm)")
	build := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath",
		"-o", filepath.Join(stage, "dist", "main.wasm"), "./examples/agreements/guest")
	build.Dir = st.opts.Root
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the sample guest: %v\n%s", err, out)
	}
	if err := copyFile(filepath.Join(src, "manifest.json"), filepath.Join(stage, "manifest.json")); err != nil {
		return "", err
	}
	if err := copyTree(filepath.Join(src, "ui"), filepath.Join(stage, "ui")); err != nil {
		return "", err
	}
	bundlePath := filepath.Join(st.opts.DataDir, "build", "agreements.tar.zst")
	f, err := os.Create(bundlePath)
	if err != nil {
		return "", err
	}
	hash, err := bundle.Pack(stage, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("packing the sample: %v", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(st.opts.DataDir, "keys", "publisher.key"))
	if err != nil {
		return "", err
	}
	key, err := signing.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return "", err
	}
	sig, err := signing.Sign(key, hash)
	if err != nil {
		return "", err
	}

	reg := st.Registry()
	bf, err := os.Open(bundlePath)
	if err != nil {
		return "", err
	}
	defer bf.Close()
	fi, _ := bf.Stat()
	res, err := reg.Publish(ctx, bf, fi.Size(), sig.Marshal())
	if err != nil {
		return "", fmt.Errorf("publishing the sample: %v", err)
	}
	st.logf("published %s@%s %s", res.Extension.Name, res.Version.Version, res.ContentHash)

	cfg, _ := json.Marshal(map[string]string{"vendor_url": st.PSAURL})
	var m struct {
		Version      string   `json:"version"`
		Capabilities []string `json:"capabilities"`
	}
	raw, _ := os.ReadFile(filepath.Join(src, "manifest.json"))
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", err
	}
	if _, err := reg.PutInstall(ctx, st.Tenant, sampleExtension, registryapi.InstallRequest{
		Version:         m.Version,
		GrantedCaps:     m.Capabilities,
		Config:          cfg,
		EgressAllowlist: []string{st.PSAURL},
	}); err != nil {
		return "", fmt.Errorf("installing the sample for %s: %v", st.Tenant, err)
	}
	if _, err := reg.PutSecrets(ctx, st.Tenant, sampleExtension, map[string]string{
		"VENDOR_API_KEY": readTrim(filepath.Join(st.opts.DataDir, "keys", "vendor.key")),
	}); err != nil {
		return "", fmt.Errorf("setting the sample's secret: %v", err)
	}
	st.logf("installed %s for tenant %q (grants %v, vendor %s)", sampleExtension, st.Tenant, m.Capabilities, st.PSAURL)
	return res.ContentHash, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// waitHTTP polls url until it answers 2xx, the process exits, or timeout.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, p *proc) error {
	return poll(ctx, timeout, p, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func waitUnixHTTP(ctx context.Context, sock, path string, timeout time.Duration, p *proc) error {
	hc := unixClient(sock)
	return poll(ctx, timeout, p, func() error {
		resp, err := hc.Get("http://runner" + path)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

func poll(ctx context.Context, timeout time.Duration, p *proc, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// warmup asks a runner to fetch, verify and compile hash ahead of traffic.
func warmup(ctx context.Context, sock, token, hash string) error {
	body, _ := json.Marshal(execapi.WarmupRequest{ContentHashes: []string{hash}})
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://runner"+execapi.PathWarmup, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := unixClient(sock).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
