package caddymodule

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/extedge/extedge/caddymodule/auth"
	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/tlsconf"
)

// checkRunnerAddress checks one `runners` address. A bare absolute path
// is the likeliest slip (runnerd's socket path pasted without a scheme),
// so its error spells out the form that works.
func checkRunnerAddress(a string) error {
	if strings.HasPrefix(a, "/") {
		return fmt.Errorf("runner address %q is a bare path: write unix/%s for a Unix socket", a, a)
	}
	if _, _, err := runnerpool.ParseAddress(a); err != nil {
		return err
	}
	return nil
}

// validateClients checks the settings of the gateway's clients that
// Validate does not: durations, CA files that could never be used, and a
// UI source given by halves.
func (h *Handler) validateClients() error {
	for name, d := range map[string]caddy.Duration{
		"registry cache_ttl":      h.Registry.CacheTTL,
		"registry max_stale":      h.Registry.MaxStale,
		"runners health_interval": h.Runners.HealthInterval,
		"runners fail_duration":   h.Runners.FailDuration,
	} {
		if d < 0 {
			return fmt.Errorf("extedge: %s must not be negative, got %v", name, time.Duration(d))
		}
	}
	if h.Registry.CAFile != "" && !strings.HasPrefix(h.Registry.URL, "https://") {
		return fmt.Errorf("extedge: registry ca_file %s needs an https:// registry URL, got %s", h.Registry.CAFile, h.Registry.URL)
	}
	if h.Runners.CAFile != "" {
		tcp := false
		for _, a := range h.Runners.Addresses {
			if network, _, _ := runnerpool.ParseAddress(a); network == "tcp" {
				tcp = true
			}
		}
		if !tcp {
			return fmt.Errorf("extedge: runners ca_file %s needs a tcp runner (Unix sockets stay plain)", h.Runners.CAFile)
		}
	}
	if (h.BundleStore == "") != (h.TrustBundle == "") {
		return errors.New("extedge: bundle_store and trust_bundle go together (/ext-ui needs both)")
	}
	return nil
}

// loadedFiles is what Provision read from the files the configuration
// names and parsed from the bundle store URL.
type loadedFiles struct {
	registryTLS *tls.Config // nil: system roots
	runnersTLS  *tls.Config // nil: plain TCP
	ui          *uiSource   // nil: no bundle_store/trust_bundle
}

// loadFiles reads every file the configuration names — token files, the
// JWT key or secret, the trust bundle, CA files — and parses the bundle
// store URL, so that a missing or unparsable one fails at `caddy
// validate`, not at the first request (SPEC §12); each error names the
// directive and the path. It dials nothing. The trusted_header secret is
// read by newAuthenticator.
func (h *Handler) loadFiles(a auth.Authenticator) (*loadedFiles, error) {
	var lf loadedFiles
	for _, tf := range []struct{ name, path string }{
		{"registry token_file", h.Registry.TokenFile},
		{"runners token_file", h.Runners.TokenFile},
	} {
		if tf.path == "" {
			continue
		}
		if _, err := readToken(tf.path); err != nil {
			return nil, fmt.Errorf("extedge: %s: %v", tf.name, err)
		}
	}
	if j, ok := a.(*auth.JWT); ok {
		if err := j.LoadKey(); err != nil {
			return nil, fmt.Errorf("extedge: %v", err)
		}
	}
	var err error
	if lf.registryTLS, err = tlsconf.Client(h.Registry.CAFile); err != nil {
		return nil, fmt.Errorf("extedge: registry ca_file: %v", err)
	}
	if lf.runnersTLS, err = tlsconf.Client(h.Runners.CAFile); err != nil {
		return nil, fmt.Errorf("extedge: runners ca_file: %v", err)
	}
	if h.BundleStore != "" {
		src := &uiSource{at: time.Now()}
		if src.store, err = blobstore.Open(h.BundleStore); err != nil {
			return nil, fmt.Errorf("extedge: bundle_store: %v", err)
		}
		pem, err := os.ReadFile(h.TrustBundle)
		if err != nil {
			return nil, fmt.Errorf("extedge: trust_bundle: %v", err)
		}
		if src.trust, err = signing.ParseTrustBundle(pem); err != nil {
			return nil, fmt.Errorf("extedge: trust_bundle %s: %v", h.TrustBundle, err)
		}
		lf.ui = src
	}
	return &lf, nil
}

// readToken reads a token file (SPEC §15: the whole file, whitespace
// trimmed); an empty one is an error.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}
