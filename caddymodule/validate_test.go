package caddymodule

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/testenv"
)

// validConfig is the extedge block the broken configs below start from:
// every file it names exists and parses.
func validConfig(f configFiles, registryURL, runner string) string {
	return `extedge {
		registry ` + registryURL + ` {
			token_file ` + f.token + `
			cache_ttl 10s
		}
		runners ` + runner + ` {
			token_file ` + f.token + `
		}
		auth jwt {
			key_file ` + f.key + `
			issuer psa
		}
		bundle_store file:///var/lib/extedge/bundles
		trust_bundle ` + f.trust + `
		max_request_body 10 MB
		timeout 5s
	}`
}

// caddyValidate runs the real `caddy validate --adapter caddyfile` (the
// ./cmd/caddy binary with this module) on a Caddyfile with extedge in one
// site block and returns its combined output and whether it succeeded.
func caddyValidate(t *testing.T, bin, extedge string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "Caddyfile")
	site := "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n\n:8080 {\n\t" + extedge + "\n\treverse_proxy 127.0.0.1:3000\n}\n"
	if err := os.WriteFile(cfg, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// TestCaddyValidateReportsBrokenConfigs: each misconfiguration fails
// `caddy validate` (not the first request), and the message names the
// problem: the directive, the file and, for adapt errors, the line.
func TestCaddyValidateReportsBrokenConfigs(t *testing.T) {
	bin := testenv.Binary(t, "./cmd/caddy")
	f := writeConfigFiles(t)
	// The valid config points at listeners that count connections:
	// validate reads the files but dials nothing.
	reg, regN := countingListener(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(f.dir, "r.sock")
	_, runN := countingListener(t, "unix", sock)
	registryURL, runner := "http://"+reg.Addr().String(), "unix/"+sock
	valid := validConfig(f, registryURL, runner)
	broken := func(old, new string) string {
		if !strings.Contains(valid, old) {
			t.Fatalf("valid config has no %q", old)
		}
		return strings.Replace(valid, old, new, 1)
	}

	if out, ok := caddyValidate(t, bin, valid); !ok {
		t.Fatalf("the valid config does not validate:\n%s", out)
	}
	if n := regN.Load() + runN.Load(); n != 0 {
		t.Fatalf("caddy validate dialed: registry %d, runner %d", regN.Load(), runN.Load())
	}

	for _, tc := range []struct {
		name   string
		config string
		want   []string // substrings of caddy's output
	}{
		{"missing jwt key file",
			broken("key_file "+f.key, "key_file "+f.missing),
			[]string{"jwt key_file", f.missing, "no such file or directory"}},
		{"jwt key file that is not a PEM key",
			broken("key_file "+f.key, "key_file "+f.junk),
			[]string{"jwt key_file", f.junk, "no PEM block"}},
		{"missing jwt secret file",
			broken("key_file "+f.key, "secret_file "+f.missing),
			[]string{"jwt secret_file", f.missing, "no such file or directory"}},
		{"missing registry token file",
			broken("token_file "+f.token+"\n\t\t\tcache_ttl", "token_file "+f.missing+"\n\t\t\tcache_ttl"),
			[]string{"registry token_file", f.missing, "no such file or directory"}},
		{"empty runner token file",
			broken("runners "+runner+" {\n\t\t\ttoken_file "+f.token, "runners "+runner+" {\n\t\t\ttoken_file "+f.empty),
			[]string{"runners token_file", f.empty, "is empty"}},
		{"missing trust bundle",
			broken("trust_bundle "+f.trust, "trust_bundle "+f.missing),
			[]string{"trust_bundle", f.missing, "no such file or directory"}},
		{"trust bundle without a key",
			broken("trust_bundle "+f.trust, "trust_bundle "+f.junk),
			[]string{"trust_bundle", f.junk}},
		{"bundle store with an ftp url",
			broken("bundle_store file:///var/lib/extedge/bundles", "bundle_store ftp://x"),
			[]string{"bundle_store", "unsupported scheme", "ftp"}},
		{"bundle store without a trust bundle",
			broken("trust_bundle "+f.trust, ""),
			[]string{"bundle_store and trust_bundle go together"}},
		{"missing registry ca file",
			strings.NewReplacer("registry http://", "registry https://", "cache_ttl 10s", "cache_ttl 10s\n\t\t\tca_file "+f.missing).Replace(valid),
			[]string{"registry ca_file", f.missing, "no such file or directory"}},
		{"missing runner ca file",
			broken("runners "+runner+" {", "runners tcp://127.0.0.1:7071 {\n\t\t\tca_file "+f.missing),
			[]string{"runners ca_file", f.missing, "no such file or directory"}},
		{"bad size",
			broken("max_request_body 10 MB", "max_request_body 10 MBs"),
			[]string{"max_request_body: invalid size unit 'MBs'", "Caddyfile:"}},
		{"bare runner socket path",
			broken("runners "+runner, "runners "+sock),
			[]string{"is a bare path: write unix/" + sock, "Caddyfile:"}},
		{"negative duration",
			broken("timeout 5s", "timeout -5s"),
			[]string{"timeout: duration must not be negative, got '-5s'", "Caddyfile:"}},
		{"invalid duration",
			broken("cache_ttl 10s", "cache_ttl soon"),
			[]string{"cache_ttl: invalid duration 'soon'", "Caddyfile:"}},
		{"unknown subdirective",
			broken("timeout 5s", "timeout 5s\n\t\tmax_body 10MiB"),
			[]string{"unrecognized extedge subdirective 'max_body'", "Caddyfile:"}},
		{"unknown registry option",
			broken("cache_ttl 10s", "cache_tl 10s"),
			[]string{"unrecognized registry option 'cache_tl'", "Caddyfile:"}},
		{"registry ca file on a plain http registry",
			broken("cache_ttl 10s", "cache_ttl 10s\n\t\t\tca_file "+f.ca.CAFile),
			[]string{"registry ca_file", f.ca.CAFile, "needs an https:// registry URL"}},
		{"registry url without a scheme",
			broken("registry "+registryURL, "registry "+reg.Addr().String()),
			[]string{"registry URL", "must be http:// or https://"}},
		{"auth jwt with two key sources",
			broken("key_file "+f.key, "key_file "+f.key+"\n\t\t\tsecret_file "+f.secret),
			[]string{"exactly one of key_file, secret_file, jwks_url"}},
		{"missing trusted_header secret file",
			broken("auth jwt {\n\t\t\tkey_file "+f.key+"\n\t\t\tissuer psa\n\t\t}",
				"auth trusted_header X-Alga-Tenant {\n\t\t\tsecret_header X-Proxy-Secret "+f.missing+"\n\t\t}"),
			[]string{"secret_header", f.missing}},
		{"rate limit redis url that is not redis://",
			broken("timeout 5s", "timeout 5s\n\t\trate_limit {\n\t\t\tredis http://127.0.0.1:6379\n\t\t}"),
			[]string{"rate_limit redis", "must be a redis:// URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := caddyValidate(t, bin, tc.config)
			if ok {
				t.Fatalf("caddy validate accepted it:\n%s", tc.config)
			}
			t.Logf("caddy validate: %s", lastLine(out))
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
		})
	}
}

// lastLine is caddy's error line (after its log lines).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}
