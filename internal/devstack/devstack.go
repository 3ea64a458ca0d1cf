// Package devstack starts the whole extedge stack on one machine from the
// binaries in bin/: registryd on an embedded PostgreSQL, two runnerd on Unix
// sockets, Caddy with the extedge module, and the PSA stand-in (host page,
// session tokens, vendor API mock). It publishes and installs the sample
// extension for the tenant "demo".
//
// `make demo` (deploy/demo) and the end-to-end test both use it, so the
// demo a person runs is the stack the test checks.
package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/extedge/extedge/internal/devstack/psa"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
)

// Options configure a stack. Zero values give the demo defaults.
type Options struct {
	// Root is the repository checkout (default: found from the working dir).
	Root string
	// DataDir keeps Postgres, bundles, keys, tokens and caches; re-running
	// with the same DataDir reuses them. Default Root/demo-data.
	DataDir string
	// BinDir holds registryd, runnerd, caddy and extctl. Default Root/bin.
	BinDir string
	// Ports; 0 picks the default (gateway 8080, PSA 8081, registry 7070,
	// Caddy admin 2019), -1 picks a free port (tests).
	GatewayPort, PSAPort, RegistryPort, AdminPort int
	// Runners is the number of runnerd processes (default 2).
	Runners int
	// Tenant gets the sample installed (default "demo").
	Tenant string
	// Log receives progress lines (default os.Stderr).
	Log io.Writer
	// Egress are further `[http://]host[:port]` entries the runners may
	// fetch, private addresses included, besides the PSA stand-in
	// (benchmarks: a local slow server).
	Egress []string
}

// Stack is a running stack.
type Stack struct {
	opts        Options
	procs       []*proc
	psaServer   *http.Server
	GatewayURL  string // http://127.0.0.1:PORT — host page, /api/ext, /ext-ui, /ext-sdk
	RegistryURL string
	AdminURL    string // Caddy admin endpoint
	PSAURL      string // the PSA stand-in directly (vendor mock lives here)
	ExtensionID string
	ContentHash string
	Tenant      string
	AdminToken  string // platform_admin token for registryd
	PSA         psa.Config
	DataDir     string
}

const sampleExtension = "com.acme.agreements"

// Start brings the stack up and returns when every part answers. On error
// it stops whatever it started.
func Start(ctx context.Context, opts Options) (st *Stack, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	st = &Stack{opts: opts, Tenant: opts.Tenant, ExtensionID: sampleExtension, DataDir: opts.DataDir}
	defer func() {
		if err != nil {
			st.Stop()
			st = nil
		}
	}()
	d := opts.DataDir
	for _, sub := range []string{"keys", "bundles", "logs", "run", "cache"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return st, err
		}
	}
	st.logf("data directory %s", d)
	if err := ensureSecrets(d); err != nil {
		return st, err
	}

	// Tokens are created before serve; the CLI attaches to the embedded
	// server the same way serve does.
	dbURL := "embedded:" + filepath.Join(d, "pg")
	tokens := map[string]string{"service": "service.token", "platform_admin": "admin.token"}
	for role, file := range tokens {
		path := filepath.Join(d, "keys", file)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		st.logf("creating %s token", role)
		out, err := st.runOutput(ctx, st.bin("registryd"), "token", "create", "--role", role, "--database-url", dbURL)
		if err != nil {
			return st, fmt.Errorf("registryd token create: %v", err)
		}
		if err := os.WriteFile(path, bytes.TrimSpace(out), 0o600); err != nil {
			return st, err
		}
	}
	st.AdminToken = readTrim(filepath.Join(d, "keys", "admin.token"))

	st.RegistryURL = fmt.Sprintf("http://127.0.0.1:%d", opts.RegistryPort)
	st.logf("starting registryd on %s (embedded PostgreSQL in %s)", st.RegistryURL, filepath.Join(d, "pg"))
	if err := st.start(ctx, "registryd", st.bin("registryd"), "serve",
		"--listen", fmt.Sprintf("127.0.0.1:%d", opts.RegistryPort),
		"--database-url", dbURL,
		"--bundle-store", "file://"+filepath.Join(d, "bundles"),
		"--trust-bundle", filepath.Join(d, "keys", "trust.pem"),
		"--secrets-key-file", filepath.Join(d, "keys", "secrets.key")); err != nil {
		return st, err
	}
	if err := waitHTTP(ctx, st.RegistryURL+"/readyz", 90*time.Second, st.procs[len(st.procs)-1]); err != nil {
		return st, fmt.Errorf("registryd not ready: %v (see %s)", err, st.logPath("registryd"))
	}

	// The PSA stand-in's port is needed for the install's config and the
	// runners' egress allowlist, so listen before publishing.
	psaLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", opts.PSAPort))
	if err != nil {
		return st, fmt.Errorf("psa stand-in: %v", err)
	}
	st.PSAURL = "http://" + psaLn.Addr().String()

	hash, err := st.publishSample(ctx)
	if err != nil {
		psaLn.Close()
		return st, err
	}
	st.ContentHash = hash

	st.PSA = psa.Config{
		SessionSecret: []byte(readTrim(filepath.Join(d, "keys", "session.secret"))),
		Issuer:        "psa",
		Audience:      "extedge",
		ExtensionID:   sampleExtension,
		ContentHash:   hash,
		VendorAPIKey:  readTrim(filepath.Join(d, "keys", "vendor.key")),
	}
	st.psaServer = &http.Server{Handler: psa.Handler(st.PSA), ReadHeaderTimeout: 10 * time.Second}
	go st.psaServer.Serve(psaLn)

	egress := strings.Join(append([]string{st.PSAURL}, opts.Egress...), ",")
	var sockets []string
	for i := 0; i < opts.Runners; i++ {
		sock := filepath.Join(d, "run", fmt.Sprintf("runner-%d.sock", i))
		sockets = append(sockets, sock)
		name := fmt.Sprintf("runnerd-%d", i)
		st.logf("starting %s on unix://%s", name, sock)
		if err := st.start(ctx, name, st.bin("runnerd"), "serve",
			"--listen", "unix://"+sock,
			"--token-file", filepath.Join(d, "keys", "runner.token"),
			"--registry", st.RegistryURL,
			"--registry-token-file", filepath.Join(d, "keys", "service.token"),
			"--bundle-store", "file://"+filepath.Join(d, "bundles"),
			"--cache-dir", filepath.Join(d, "cache", name),
			"--trust-bundle", filepath.Join(d, "keys", "trust.pem"),
			"--secrets-key-file", filepath.Join(d, "keys", "secrets.key"),
			"--egress-allowlist", egress,
			"--egress-allow-private", egress,
			// Stop ends Caddy before the runners: nobody is left to
			// notice /readyz fail, so there is nothing to wait for.
			"--drain-delay", "0"); err != nil {
			return st, err
		}
	}
	for i, sock := range sockets {
		if err := waitUnixHTTP(ctx, sock, "/readyz", 60*time.Second, st.procs[len(st.procs)-len(sockets)+i]); err != nil {
			return st, fmt.Errorf("runner %d not ready: %v", i, err)
		}
	}
	// Compile the sample ahead of traffic (a Go guest takes seconds to
	// compile the first time; later runs hit the runners' disk cache).
	st.logf("warming runners up (first run compiles the sample's wasm; later runs use the disk cache)")
	runnerToken := readTrim(filepath.Join(d, "keys", "runner.token"))
	for _, sock := range sockets {
		if err := warmup(ctx, sock, runnerToken, hash); err != nil {
			st.logf("warmup of %s failed (requests will compile on demand): %v", sock, err)
		}
	}

	st.GatewayURL = fmt.Sprintf("http://127.0.0.1:%d", opts.GatewayPort)
	st.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", opts.AdminPort)
	caddyfile := filepath.Join(d, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(st.caddyfile(sockets)), 0o644); err != nil {
		return st, err
	}
	st.logf("starting caddy on %s", st.GatewayURL)
	if err := st.start(ctx, "caddy", st.bin("caddy"), "run", "--config", caddyfile, "--adapter", "caddyfile"); err != nil {
		return st, err
	}
	if err := waitHTTP(ctx, st.GatewayURL+"/ext-sdk/v1/host.js", 30*time.Second, st.procs[len(st.procs)-1]); err != nil {
		return st, fmt.Errorf("caddy not ready: %v (see %s)", err, st.logPath("caddy"))
	}
	return st, nil
}

func (o *Options) defaults() error {
	if o.Root == "" {
		root, err := findRoot()
		if err != nil {
			return err
		}
		o.Root = root
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(o.Root, "demo-data")
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(o.Root, "bin")
	}
	var err error
	for _, p := range []struct {
		v   *int
		def int
	}{{&o.GatewayPort, 8080}, {&o.PSAPort, 8081}, {&o.RegistryPort, 7070}, {&o.AdminPort, 2019}} {
		switch *p.v {
		case 0:
			*p.v = p.def
		case -1:
			if *p.v, err = freePort(); err != nil {
				return err
			}
		}
	}
	if o.Runners == 0 {
		o.Runners = 2
	}
	if o.Tenant == "" {
		o.Tenant = "demo"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	abs, err := filepath.Abs(o.DataDir)
	o.DataDir = abs
	return err
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/extedge/extedge\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("devstack: run inside the extedge checkout")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (st *Stack) logf(format string, args ...any) {
	fmt.Fprintf(st.opts.Log, "demo: "+format+"\n", args...)
}

func (st *Stack) bin(name string) string { return filepath.Join(st.opts.BinDir, name) }

func (st *Stack) logPath(name string) string {
	return filepath.Join(st.opts.DataDir, "logs", name+".log")
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureSecrets creates, once, every key and token file the stack needs.
func ensureSecrets(d string) error {
	keys := filepath.Join(d, "keys")
	files := map[string]func() ([]byte, error){
		"session.secret": func() ([]byte, error) { return []byte(randomHex(32)), nil },
		"runner.token":   func() ([]byte, error) { return []byte(randomHex(32)), nil },
		"vendor.key":     func() ([]byte, error) { return []byte("vendor-" + randomHex(12)), nil },
		"secrets.key":    func() ([]byte, error) { return []byte(secretbox.GenerateKey() + "\n"), nil },
	}
	for name, gen := range files {
		path := filepath.Join(keys, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		b, err := gen()
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	keyPath := filepath.Join(keys, "publisher.key")
	if _, err := os.Stat(keyPath); err == nil {
		return nil
	}
	k, err := signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		return err
	}
	keyPEM, err := signing.MarshalPrivateKeyPEM(k)
	if err != nil {
		return err
	}
	pubPEM, err := signing.MarshalPublicKeyPEM(k.Public(), "Acme Inc.")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(keys, "trust.pem"), pubPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, keyPEM, 0o600)
}

// caddyfile renders the demo's Caddyfile: extedge in front of the PSA
// stand-in, exactly as an operator would put it in front of the PSA app.
func (st *Stack) caddyfile(sockets []string) string {
	d := st.opts.DataDir
	var runners []string
	for _, s := range sockets {
		runners = append(runners, "unix/"+s)
	}
	origin := st.GatewayURL
	localhost := strings.Replace(origin, "127.0.0.1", "localhost", 1)
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	default_bind 127.0.0.1
	auto_https off
}

%s, %s {
	# Access log: one JSON line per request with extedge's request_id,
	# tenant, extension and outcome (SPEC §21); credentials are redacted.
	log {
		output file %s
		format json
	}
	extedge {
		registry %s {
			token_file %s
		}
		runners %s {
			token_file %s
		}
		auth jwt {
			secret_file %s
			issuer psa
			audience extedge
			tenant_claim tenant
		}
		bundle_store file://%s
		trust_bundle %s
		ui_cache %s 256MiB
		timeout 20s
		rate_limit {
			per_tenant 200r/s burst 400
			per_extension 100r/s burst 200
		}
		cors_origins null %s %s
		frame_ancestors %s %s
		# Extension UIs only on the second loopback name (two origins,
		# SPEC §16); their pages call the API on %s.
		ui_host localhost
		gateway_origin %s
	}
	reverse_proxy %s
}
`, st.opts.AdminPort,
		origin, localhost, st.logPath("caddy-access"),
		st.RegistryURL, filepath.Join(d, "keys", "service.token"),
		strings.Join(runners, " "), filepath.Join(d, "keys", "runner.token"),
		filepath.Join(d, "keys", "session.secret"),
		filepath.Join(d, "bundles"), filepath.Join(d, "keys", "trust.pem"),
		filepath.Join(d, "cache", "ui"),
		origin, localhost, origin, localhost, origin, origin,
		strings.TrimPrefix(st.PSAURL, "http://"))
}

// proc is a child process with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

func (st *Stack) start(ctx context.Context, name, bin string, args ...string) error {
	logf, err := os.OpenFile(st.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so Ctrl-C in the terminal reaches the demo only
	// and Stop shuts children down in order; die with the demo.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	st.procs = append(st.procs, p)
	return nil
}

func (st *Stack) runOutput(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, lastLine(errb.String()))
	}
	return out, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Stop ends every process in reverse start order (Caddy first, registryd
// and its PostgreSQL last), each with SIGTERM and a grace period.
func (st *Stack) Stop() {
	if st == nil {
		return
	}
	if st.psaServer != nil {
		st.psaServer.Close()
	}
	for i := len(st.procs) - 1; i >= 0; i-- {
		p := st.procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		p.log.Close()
	}
	st.procs = nil
}

// Exited reports a process that ended on its own, if any.
func (st *Stack) Exited() (string, error, bool) {
	for _, p := range st.procs {
		select {
		case <-p.done:
			return p.name, p.err, true
		default:
		}
	}
	return "", nil, false
}

// LogPath returns the log file of a stack process ("registryd", "caddy", "runnerd-0"…).
func (st *Stack) LogPath(name string) string { return st.logPath(name) }

// Registry returns a registry client with the platform admin token.
func (st *Stack) Registry() *registryapi.Client {
	return registryapi.New(st.RegistryURL, st.AdminToken, nil)
}

// SessionToken mints a session JWT for tenant, as the PSA page gets it.
func (st *Stack) SessionToken(tenant string) (string, error) {
	tok, _, err := psa.MintToken(st.PSA, tenant, "u-test", "", 10*time.Minute)
	return tok, err
}
