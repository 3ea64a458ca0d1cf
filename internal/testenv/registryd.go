package testenv

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RegistrydOptions configure a registryd process for a test. DatabaseURL
// and BundleStore are required; the rest is optional.
type RegistrydOptions struct {
	DatabaseURL    string
	BundleStore    string // file:///dir or s3://…
	TrustBundle    string // PEM file
	SecretsKeyFile string
	Port           int      // 0 picks a free port
	Args           []string // extra `serve` flags
	// TLS, when set, serves HTTPS with its certificate and key
	// (--tls-cert/--tls-key); URL is then https:// and Client trusts
	// TLS.CAFile.
	TLS *TestCA
}

// RegistrydServer is a real registryd process built from this module
// (./registryd) and serving on 127.0.0.1.
type RegistrydServer struct {
	URL  string
	Port int
	Bin  string
	Log  string // path of its combined output

	dbURL  string
	client *http.Client
	proc   *process
}

// Registryd builds registryd once per test binary, runs `serve --migrate`
// with opts, and waits until /readyz answers. The process is stopped when
// the test ends.
func Registryd(t testing.TB, opts RegistrydOptions) *RegistrydServer {
	t.Helper()
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	r := &RegistrydServer{
		URL:    fmt.Sprintf("http://127.0.0.1:%d", opts.Port),
		Port:   opts.Port,
		Bin:    Binary(t, "./registryd"),
		Log:    filepath.Join(t.TempDir(), "registryd.log"),
		dbURL:  opts.DatabaseURL,
		client: http.DefaultClient,
	}
	args := []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", opts.Port),
		"--database-url", opts.DatabaseURL, "--bundle-store", opts.BundleStore, "--migrate"}
	if opts.TLS != nil {
		r.URL = fmt.Sprintf("https://127.0.0.1:%d", opts.Port)
		r.client = opts.TLS.client(t)
		args = append(args, "--tls-cert", opts.TLS.CertFile, "--tls-key", opts.TLS.KeyFile)
	}
	if opts.TrustBundle != "" {
		args = append(args, "--trust-bundle", opts.TrustBundle)
	}
	if opts.SecretsKeyFile != "" {
		args = append(args, "--secrets-key-file", opts.SecretsKeyFile)
	}
	r.proc = startDaemon(t, r.Bin, append(args, opts.Args...), nil, r.Log, httpReady(r.client, r.URL+"/readyz"))
	return r
}

// Client is an HTTP client for URL: with TLS, one trusting only the test CA.
func (r *RegistrydServer) Client() *http.Client { return r.client }

// Kill stops registryd with SIGKILL (for fault tests) and waits for it.
func (r *RegistrydServer) Kill() { r.proc.kill() }

// Exited is closed when the process has ended.
func (r *RegistrydServer) Exited() <-chan struct{} { return r.proc.exited }

// Token creates an API token with `registryd token create` against the
// server's database (args e.g. "--role", "service") and returns it.
func (r *RegistrydServer) Token(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(r.Bin, append([]string{"token", "create", "--database-url", r.dbURL}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("registryd token create %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("registryd token create %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}
