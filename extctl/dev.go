package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
)

// `extctl dev [DIR]` is the author loop: build, pack, sign, publish a dev
// version, install it for a dev tenant, tail the debug stream, and do it
// again whenever a file of the project changes. Its defaults are the
// stack `make demo` runs (internal/devstack): the registry on :7070 with
// demo-data/keys/admin.token, the gateway on :8080, the tenant "demo", the
// demo's publisher key, and a gateway token minted from the demo's session
// secret.

// DefaultGateway is the gateway of `make demo`.
const DefaultGateway = "http://127.0.0.1:8080"

// devVersionBase is the version dev publishes under: 0.0.0-dev.N sorts
// below every release, so a dev build never becomes an extension's latest
// version, and N grows by one per publish (from the highest dev version
// the registry already has, so a restart never collides).
const devVersionBase = "0.0.0-dev."

var devVersionRE = regexp.MustCompile(`^0\.0\.0-dev\.(\d+)$`)

// devSkipDirs are never watched: build output, dependencies, VCS.
var devSkipDirs = map[string]bool{"build": true, "dist": true, "node_modules": true}

type devFlags struct {
	tenant   string
	keyFile  string
	unsigned bool
	demoData string
	interval time.Duration
	noFollow bool
	gw       *gatewayFlags
	rf       *registryFlags
}

func devCmd(fs *flagSet) runFunc {
	f := new(devFlags)
	fs.StringVar(&f.tenant, "tenant", "demo", "install for tenant `T`")
	fs.StringVar(&f.keyFile, "key", "", "publisher `KEY` to sign with (default: the demo's keys/publisher.key)")
	fs.BoolVar(&f.unsigned, "unsigned", false, "publish unsigned (only a registry run with --allow-unsigned accepts it)")
	fs.StringVar(&f.demoData, "demo-data", "", "`DIR` of `make demo`'s keys and tokens (default: demo-data of the extedge checkout the project's go.mod points at, or above the working directory)")
	fs.bindEnv("demo-data", "EXTEDGE_DEMO_DATA")
	fs.DurationVar(&f.interval, "interval", 500*time.Millisecond, "look for changed files every `DURATION`")
	fs.BoolVar(&f.noFollow, "no-follow", false, "do not tail the gateway's debug stream")
	f.gw = addGatewayFlags(fs)
	// dev's gateway defaults to the demo's (logs --follow has none).
	gwFlag := fs.Lookup("gateway")
	gwFlag.DefValue, f.gw.url = DefaultGateway, DefaultGateway
	f.rf = addRegistryFlags(fs, time.Minute)
	fs.Lookup("timeout").Usage = "give up on one registry call after this `DURATION` (0: no limit); the loop itself runs until Ctrl-C"
	return func(c *cli, pos []string) error {
		if len(pos) > 1 {
			return usageError{"dev takes at most one DIR"}
		}
		dir := "."
		if len(pos) == 1 {
			dir = pos[0]
		}
		if f.interval <= 0 {
			return usageError{"--interval must be positive"}
		}
		if f.unsigned && f.keyFile != "" {
			return usageError{"--key and --unsigned exclude each other"}
		}
		d, err := newDevLoop(c, f, dir)
		if err != nil {
			return err
		}
		defer d.sess.cancel()
		ctx, stop := signal.NotifyContext(c.context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return d.run(ctx)
	}
}

// devLoop is one `extctl dev` run.
type devLoop struct {
	c        *cli
	dir      string
	tenant   string
	sess     *session
	key      crypto.Signer // nil: unsigned
	interval time.Duration
	timeout  time.Duration
	stream   *debugStream // nil: not tailing
	asJSON   bool         // stdout: JSON lines (dev events and debug entries)
	out      *logPrinter  // debug entries, on stdout
	n        int          // the last dev number published
	lastKey  string       // hash of the last published tree, version aside
}

func newDevLoop(c *cli, f *devFlags, dir string) (*devLoop, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "manifest.json")); err != nil {
		return nil, usageError{fmt.Sprintf("%s has no manifest.json (run extctl dev in an extension project, e.g. one extctl new made)", abs)}
	}
	demo := f.demoData
	if demo == "" {
		demo = findDemoData(abs)
	}
	demoFile := func(name string) string {
		if demo == "" {
			return ""
		}
		p := filepath.Join(demo, "keys", name)
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if f.rf.tokenFile == "" && strings.TrimSpace(os.Getenv("EXTEDGE_TOKEN")) == "" {
		f.rf.tokenFile = demoFile("admin.token")
	}
	d := &devLoop{c: c, dir: abs, tenant: f.tenant, interval: f.interval, timeout: f.rf.timeout,
		asJSON: *f.rf.asJSON, out: newLogPrinter(c.stdout, *f.rf.asJSON)}
	if !f.unsigned {
		keyFile := f.keyFile
		if keyFile == "" {
			if keyFile = demoFile("publisher.key"); keyFile == "" {
				return nil, usageError{"dev needs --key KEY (or --unsigned, or make demo's data directory: --demo-data DIR)"}
			}
		}
		pemBytes, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("reading key: %v", err)
		}
		if d.key, err = signing.ParsePrivateKeyPEM(pemBytes); err != nil {
			return nil, fmt.Errorf("key %s: %v", keyFile, err)
		}
	}
	if d.sess, err = f.rf.session(); err != nil {
		return nil, err
	}
	if !f.noFollow {
		d.stream, err = devStream(f.gw, demoFile("session.secret"), f.tenant, filepath.Join(abs, "manifest.json"))
		if err != nil {
			fmt.Fprintf(c.stderr, "dev: not tailing the debug stream: %v\n", err)
		}
	}
	return d, nil
}

// devStream is the debug stream dev tails: --gateway (default the demo's)
// with --gateway-token-file, else a token minted from the demo's session
// secret for the dev tenant.
func devStream(gw *gatewayFlags, sessionSecret, tenant, manifestPath string) (*debugStream, error) {
	name, err := manifestName(manifestPath)
	if err != nil {
		return nil, err
	}
	if gw.tokenFile == "" && strings.TrimSpace(os.Getenv("EXTEDGE_GATEWAY_TOKEN")) == "" && sessionSecret != "" {
		if gw.minted, err = demoGatewayToken(sessionSecret, tenant); err != nil {
			return nil, err
		}
	}
	return gw.stream(name)
}

// demoGatewayToken mints a session JWT with extension:debug for tenant,
// signed as the demo's PSA stand-in signs its sessions (internal/devstack/psa).
func demoGatewayToken(secretFile, tenant string) (string, error) {
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return "", err
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "psa", "aud": "extedge", "sub": "extctl-dev", "tenant": tenant,
		"perms": []string{"extension:read", "extension:debug"},
		"iat":   time.Now().Unix(), "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString([]byte(strings.TrimSpace(string(secret))))
}

// findDemoData returns make demo's data directory: demo-data in the
// extedge checkout the project's go.mod replace points at, else the first
// demo-data at or above the project or the working directory.
func findDemoData(project string) string {
	ok := func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "keys", "admin.token"))
		return err == nil
	}
	if root := goModReplace(filepath.Join(project, "go.mod"), sdkModule); root != "" {
		if !filepath.IsAbs(root) {
			root = filepath.Join(project, root)
		}
		if d := filepath.Join(root, "demo-data"); ok(d) {
			return d
		}
	}
	cwd, _ := os.Getwd()
	for _, start := range []string{project, cwd} {
		for dir := start; dir != ""; {
			if d := filepath.Join(dir, "demo-data"); ok(d) {
				return d
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// goModReplace returns the directory a go.mod replaces module with, or "".
func goModReplace(gomod, module string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "replace ")
		if !ok {
			continue
		}
		lhs, rhs, ok := strings.Cut(rest, "=>")
		if l := strings.Fields(lhs); !ok || len(l) == 0 || l[0] != module {
			continue
		}
		rhs = strings.TrimSpace(rhs)
		if v, err := strconv.Unquote(rhs); err == nil {
			return v
		}
		if r := strings.Fields(rhs); len(r) == 1 { // a directory, not module + version
			return r[0]
		}
	}
	return ""
}

func manifestName(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var m struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Name == "" {
		return "", fmt.Errorf("%s has no name", path)
	}
	return m.Name, nil
}

// callContext bounds one registry call by --timeout (0: no limit).
func (d *devLoop) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d.timeout)
}

func (d *devLoop) logf(format string, args ...any) {
	fmt.Fprintf(d.c.stderr, "dev: "+format+"\n", args...)
}

// devEvent is one line of `dev --json` on stdout, besides the debug
// stream's {"type":"debug",…} entries.
type devEvent struct {
	Type        string `json:"type"` // published, unchanged, failed
	Extension   string `json:"extension,omitempty"`
	Version     string `json:"version,omitempty"`
	ContentHash string `json:"content_hash,omitempty"`
	Tenant      string `json:"tenant,omitempty"`
	Error       string `json:"error,omitempty"`
}

func (d *devLoop) event(e devEvent) {
	if d.asJSON {
		b, _ := json.Marshal(e)
		fmt.Fprintf(d.c.stdout, "%s\n", b)
	}
}

// run publishes once, then again after every change, until ctx ends.
func (d *devLoop) run(ctx context.Context) error {
	followDone := make(chan struct{})
	following := false
	snap := d.snapshot()
	for {
		if err := d.round(ctx); err != nil && ctx.Err() == nil {
			d.logf("%v", err)
			d.logf("waiting for a change")
			d.event(devEvent{Type: "failed", Error: err.Error()})
		}
		if ctx.Err() != nil {
			break
		}
		if d.stream != nil && !following {
			following = true
			go func() {
				defer close(followDone)
				if err := d.stream.follow(ctx, d.c.stderr, d.out); err != nil {
					d.logf("debug stream: %v", err)
				}
			}()
		}
		next, err := d.waitChange(ctx, snap)
		if err != nil {
			break
		}
		snap = next
	}
	if following {
		<-followDone
	}
	d.logf("stopped")
	return nil
}

// fileState is what the watcher compares.
type fileState struct {
	mod  time.Time
	size int64
}

// snapshot lists the project's files (not hidden ones, not build output).
func (d *devLoop) snapshot() map[string]fileState {
	out := map[string]fileState{}
	filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := e.Name()
		if p != d.dir && (strings.HasPrefix(name, ".") || (e.IsDir() && devSkipDirs[name])) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				out[p] = fileState{fi.ModTime(), fi.Size()}
			}
		}
		return nil
	})
	return out
}

func sameSnapshot(a, b map[string]fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.mod.Equal(v.mod) || w.size != v.size {
			return false
		}
	}
	return true
}

// waitChange polls until the project differs from prev and then stays the
// same for one interval (an editor's save is often several writes).
func (d *devLoop) waitChange(ctx context.Context, prev map[string]fileState) (map[string]fileState, error) {
	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	var pending map[string]fileState
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		cur := d.snapshot()
		switch {
		case pending != nil && sameSnapshot(cur, pending):
			return cur, nil
		case !sameSnapshot(cur, prev):
			pending = cur
		}
	}
}

// publish packs tree as the next dev version, signs and publishes it.
func (d *devLoop) publish(ctx context.Context, tree string) (version, hash string, err error) {
	if d.n == 0 {
		if d.n, err = d.lastDevNumber(ctx, tree); err != nil {
			return "", "", err
		}
	}
	version = devVersionBase + strconv.Itoa(d.n+1)
	if err := setManifestVersion(tree, version); err != nil {
		return "", "", err
	}
	out := filepath.Join(d.dir, "build", "dev.tar.zst")
	hash, size, err := packAtomic(tree, out)
	if err != nil {
		return "", "", fmt.Errorf("pack: %v", err)
	}
	var sigJSON []byte
	if d.key != nil {
		sig, err := signing.Sign(d.key, hash)
		if err != nil {
			return "", "", fmt.Errorf("sign: %v", err)
		}
		sigJSON = sig.Marshal()
	}
	bf, err := os.Open(out)
	if err != nil {
		return "", "", err
	}
	defer bf.Close()
	rctx, cancel := d.callContext(ctx)
	defer cancel()
	if _, err := d.sess.client.Publish(rctx, bf, size, sigJSON); err != nil {
		return "", "", err
	}
	d.n++
	return version, hash, nil
}

// round builds, packs, signs, publishes and installs once.
func (d *devLoop) round(ctx context.Context) error {
	start := time.Now()
	stage, err := d.build(ctx)
	if err != nil {
		return err
	}
	tree := filepath.Join(d.dir, "build", "dev")
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	var skip map[string]bool
	if stage == d.dir {
		// The project is the bundle tree: leave out dev's own output and
		// npm's dependencies (dist/ may well be the build's output).
		skip = map[string]bool{"build": true, "node_modules": true}
	}
	if err := copyDir(stage, tree, skip); err != nil {
		return fmt.Errorf("staging: %v", err)
	}
	// The tree's hash with a fixed version tells whether anything but the
	// version would change.
	if err := setManifestVersion(tree, devVersionBase+"0"); err != nil {
		return err
	}
	key, err := bundle.Pack(tree, io.Discard)
	if err != nil {
		return fmt.Errorf("pack: %v", err)
	}
	if key == d.lastKey {
		d.logf("the bundle did not change; nothing published")
		d.event(devEvent{Type: "unchanged"})
		return nil
	}
	m, err := readManifest(tree)
	if err != nil {
		return err
	}
	version, hash, err := d.publish(ctx, tree)
	var ae *registryapi.APIError
	if errors.As(err, &ae) && ae.Code == "version_exists" {
		// Another run published that number meanwhile: take the next one.
		d.n = 0
		version, hash, err = d.publish(ctx, tree)
	}
	if err != nil {
		return fmt.Errorf("publish: %v", d.sess.wrap(err))
	}
	rctx, cancel := d.callContext(ctx)
	defer cancel()
	d.lastKey = key
	caps := m.Capabilities
	if caps == nil {
		caps = []string{}
	}
	if _, err := d.sess.client.PutInstall(rctx, d.tenant, m.Name, registryapi.InstallRequest{Version: version, GrantedCaps: caps}); err != nil {
		return fmt.Errorf("published %s@%s, but install: %v", m.Name, version, d.sess.wrap(err))
	}
	d.logf("published %s@%s (%s) and installed it for tenant %s in %s", m.Name, version, hash, d.tenant, time.Since(start).Round(10*time.Millisecond))
	d.event(devEvent{Type: "published", Extension: m.Name, Version: version, ContentHash: hash, Tenant: d.tenant})
	return nil
}

// build runs the project's build and returns the directory to pack:
// ./build.sh if present (it stages build/bundle), else `npm run build`
// when there is a package.json, else the Go guest in ./guest compiled as
// build.sh does, staged with manifest.json and ui/ in build/bundle.
func (d *devLoop) build(ctx context.Context) (string, error) {
	staged := filepath.Join(d.dir, "build", "bundle")
	var cmd *exec.Cmd
	switch {
	case fileExists(filepath.Join(d.dir, "build.sh")):
		cmd = buildCommand(ctx, "./build.sh")
		if os.Getenv("EXTCTL") == "" {
			if exe, err := os.Executable(); err == nil {
				cmd.Env = append(os.Environ(), "EXTCTL="+exe)
			}
		}
	case fileExists(filepath.Join(d.dir, "package.json")):
		cmd = buildCommand(ctx, "npm", "run", "build")
	case fileExists(filepath.Join(d.dir, "go.mod")):
		return staged, d.buildGo(ctx, staged)
	default:
		return d.dir, nil // nothing to build: the directory is the bundle tree
	}
	cmd.Dir = d.dir
	d.logf("building (%s)", strings.Join(cmd.Args, " "))
	// The build's output (build.sh's own pack of the unversioned tree
	// included) is noise while it works: shown only when it fails.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		d.c.stderr.Write(out.Bytes())
		return "", fmt.Errorf("build (%s) failed: %v", strings.Join(cmd.Args, " "), err)
	}
	if fileExists(filepath.Join(staged, "manifest.json")) {
		return staged, nil
	}
	return d.dir, nil
}

// buildCommand runs a build in its own process group, so that Ctrl-C (or
// the context ending) stops the whole build — build.sh's go build too —
// and not just the shell.
func buildCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (d *devLoop) buildGo(ctx context.Context, stage string) error {
	m, err := readManifest(d.dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	pkg := "./guest"
	if !fileExists(filepath.Join(d.dir, "guest")) {
		pkg = "."
	}
	cmd := buildCommand(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(stage, filepath.FromSlash(m.Entry)), pkg)
	cmd.Dir = d.dir
	d.logf("building (GOOS=wasip1 GOARCH=wasm go build %s)", pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.c.stderr.Write(out)
		return fmt.Errorf("go build failed: %v", err)
	}
	if err := copyFileMode(filepath.Join(d.dir, "manifest.json"), filepath.Join(stage, "manifest.json")); err != nil {
		return err
	}
	if fileExists(filepath.Join(d.dir, "ui")) {
		return copyDir(filepath.Join(d.dir, "ui"), filepath.Join(stage, "ui"), nil)
	}
	return nil
}

// lastDevNumber is the highest N of the registry's 0.0.0-dev.N versions of
// the tree's extension (0 when it has none, or the extension is new).
func (d *devLoop) lastDevNumber(ctx context.Context, tree string) (int, error) {
	m, err := readManifest(tree)
	if err != nil {
		return 0, err
	}
	rctx, cancel := d.callContext(ctx)
	defer cancel()
	vs, err := d.sess.client.ListVersions(rctx, m.Name)
	var ae *registryapi.APIError
	if errors.As(err, &ae) && ae.Status == 404 {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing versions: %v", d.sess.wrap(err))
	}
	n := 0
	for _, v := range vs {
		if sub := devVersionRE.FindStringSubmatch(v.Version); sub != nil {
			k, _ := strconv.Atoi(sub[1])
			n = max(n, k)
		}
	}
	return n, nil
}

func readManifest(dir string) (*manifest.Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(raw, manifest.Options{})
	if err != nil {
		return nil, fmt.Errorf("manifest.json: %v", err)
	}
	return m, nil
}

// setManifestVersion rewrites dir/manifest.json's version, keeping every
// other field as written.
func setManifestVersion(dir, version string) error {
	p := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("manifest.json: %v", err)
	}
	obj["version"], _ = json.Marshal(version)
	out, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, append(out, '\n'), 0o644)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// copyDir copies src's regular files (not hidden ones, nor the top-level
// directories in skip) into dst.
func copyDir(src, dst string, skip map[string]bool) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != src && (strings.HasPrefix(e.Name(), ".") || (e.IsDir() && filepath.Dir(p) == src && skip[e.Name()])) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		return copyFileMode(p, filepath.Join(dst, rel))
	})
}

func copyFileMode(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
