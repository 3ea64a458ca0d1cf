package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/devstack"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// settings are the knobs of a benchmark run, from the environment.
type settings struct {
	warmup, duration time.Duration
	concurrency      int    // workers of every saturating load
	quiet            int    // workers of the quiet tenant (noisy neighbour)
	runnerProcs      string // GOMAXPROCS of the runners ("" = Go's default, every core)
}

func benchSettings(t *testing.T) settings {
	t.Helper()
	if os.Getenv("EXTEDGE_BENCH") != "1" {
		t.Skip("end-to-end benchmark: set EXTEDGE_BENCH=1 to run it (starts the whole stack, takes minutes; see bench/e2e/README.md)")
	}
	s := settings{warmup: 2 * time.Second, duration: 10 * time.Second, concurrency: 8, quiet: 2}
	for name, d := range map[string]*time.Duration{"EXTEDGE_BENCH_WARMUP": &s.warmup, "EXTEDGE_BENCH_DURATION": &s.duration} {
		if v := os.Getenv(name); v != "" {
			var err error
			if *d, err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	for name, n := range map[string]*int{"EXTEDGE_BENCH_CONCURRENCY": &s.concurrency, "EXTEDGE_BENCH_QUIET_CONCURRENCY": &s.quiet} {
		if v := os.Getenv(name); v != "" {
			var err error
			if *n, err = strconv.Atoi(v); err != nil || *n < 1 {
				t.Fatalf("%s: want a positive integer, got %q", name, v)
			}
		}
	}
	if v := os.Getenv("EXTEDGE_BENCH_RUNNER_GOMAXPROCS"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("EXTEDGE_BENCH_RUNNER_GOMAXPROCS: want a positive integer, got %q", v)
		}
		s.runnerProcs = v
	}
	return s
}

// Extensions published for the benchmark besides the demo's sample (a
// dozen, so that almost surely at least two prefer each runner). Each is
// installed for its own tenant, so the gateway's per-tenant limits and the
// runners' per-tenant queues never couple two of them, and each has:
//
//   - GET /ok: runnerd/testdata/ok.wat, a fixed 201 "hello";
//   - GET /spin: spinIterations of a WAT loop (several ms of guest CPU);
//   - GET /loop: loop.wat, an infinite loop stopped by its 200 ms
//     endpoint timeout (504);
//   - GET /burn: burnIterations of the same loop, CPU-bound below its
//     endpoint timeout (200);
//   - GET /huge: a hugeBytes opaque body;
//   - GET /slow (when the benchmark runs a slow server): one http.fetch of
//     that server, which answers after slowDelay.
const (
	benchExtensions = 12
	benchPublisher  = "Acme Inc." // devstack's publisher key is bound to it
	loopTimeoutMS   = 200
	burnTimeoutMS   = 2000
	slowTimeoutMS   = 4000
	noisyTenant     = "bench-noisy"
)

// spinIterations makes /spin a CPU-bound handler (about 5-10 ms of
// guest time, machine-dependent), so the runners, not the gateway, are the
// bottleneck in the CPU-bound scale-out scenario.
const spinIterations = 10_000_000

// burnIterations makes /burn spin for tens of milliseconds, well below
// its 2 s endpoint timeout on any machine this runs on.
const burnIterations = 100_000_000

// hugeBytes is /huge's body: half the runner's 8 MiB response cap.
const hugeBytes = 4 << 20

// slowDelay is how long the slow server takes to answer /slow's fetch.
const slowDelay = 2 * time.Second

// spinReply is what /spin and /burn answer.
const spinReply = `{"status":200,"headers":{"content-type":"text/plain"},"body_b64":"aGVsbG8="}`

// spinWasm counts down n, then answers spinReply.
func spinWasm(t *testing.T, n int) []byte {
	t.Helper()
	src := fmt.Sprintf(`(module %s
  (data (i32.const 1024) "%s")
  (func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
    (local $i i32)
    (local.set $i (i32.const %d))
    (block $done
      (loop $spin
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $spin)))
    (call $respond (local.get $out) (i32.const 1024) (i32.const %d))))`,
		guests.Prelude, guests.Escape(spinReply), n, len(spinReply))
	wasm, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatalf("spin guest: %v", err)
	}
	return wasm
}

// hugeWasm answers hugeBytes of "x" (not JSON, so the runner relays them
// as an opaque 200 body).
func hugeWasm(t *testing.T) []byte {
	t.Helper()
	src := fmt.Sprintf(`(module %s
  (func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
    (local $buf i32)
    (local.set $buf (call $alloc (i32.const %d)))
    (memory.fill (local.get $buf) (i32.const 120) (i32.const %d))
    (call $respond (local.get $out) (local.get $buf) (i32.const %d))))`,
		guests.Prelude, hugeBytes, hugeBytes, hugeBytes)
	wasm, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		t.Fatalf("huge guest: %v", err)
	}
	return wasm
}

func benchExtension(i int) string { return fmt.Sprintf("com.acme.bench%d", i) }
func benchTenant(i int) string    { return fmt.Sprintf("bench-%d", i) }

// TestLoadEndToEnd measures SPEC §13's end-to-end and scale-out targets
// (TestNoisyNeighbours the noisy-neighbour ones) on one devstack (registryd, two runnerd, Caddy with
// the extedge module), with every baseline measured in the same run:
//
//   - baseline: the same Caddy process, a second site doing a plain
//     reverse_proxy to a Go stub that answers the bytes the trivial guest
//     answers;
//   - end to end: GET /api/ext/com.acme.bench0/ok (trivial WAT guest), and
//     the sample's GET /agreements?page=1&page_size=1 (3 MB Go guest and a
//     storage.kv read through registryd);
//   - scale-out: the same load over a set of bundles whose rendezvous
//     order puts half on each runner, with the gateway configured with one
//     runner and then with two (the Caddy config is swapped through the
//     admin API; both runnerd processes stay up throughout), for the
//     trivial /ok and for the CPU-bound /spin.
//
// The load generator runs in this process on the same cores as the stack.
func TestLoadEndToEnd(t *testing.T) {
	cfg := benchSettings(t)
	ctx := context.Background()
	t.Logf("machine: %d CPUs, GOMAXPROCS %d, load average at start %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())
	st := startStack(t, cfg.runnerProcs)
	if cfg.runnerProcs != "" {
		t.Logf("runnerd processes run with GOMAXPROCS=%s", cfg.runnerProcs)
	}
	g := newGateway(t, st)
	// Single-tenant saturating loads measure the data path: the per-tenant
	// cap (default 2 × runners, which TestNoisyNeighbours keeps) would shed
	// most of them.
	g.tenantConcurrency = 4 * cfg.concurrency

	// Publish and install the benchmark extensions.
	hashes := publishBench(t, st, "")
	for i := range benchExtensions {
		if _, err := st.Registry().PutInstall(ctx, benchTenant(i), benchExtension(i), registryapi.InstallRequest{
			Version: "1.0.0", GrantedCaps: []string{}, EgressAllowlist: []string{}}); err != nil {
			t.Fatalf("installing %s: %v", benchExtension(i), err)
		}
	}

	// The stub answers what the trivial guest answers through the
	// gateway: same status, headers and body.
	g.load(t, g.runners)
	first := g.get(t, benchTenant(0), "/api/ext/"+benchExtension(0)+"/ok")
	stub := httptest.NewServer(replay(first))
	defer stub.Close()
	g.baselineUpstream = strings.TrimPrefix(stub.URL, "http://")

	// Which runner does each bundle prefer? Send one request each and
	// read the per-runner request counters.
	g.load(t, g.runners)
	split := map[string][]int{}
	for i := range benchExtensions {
		before := g.runnerRequests(t)
		g.get(t, benchTenant(i), "/api/ext/"+benchExtension(i)+"/ok")
		after := g.runnerRequests(t)
		for addr, n := range after {
			if n > before[addr] {
				split[addr] = append(split[addr], i)
			}
		}
	}
	spread := balanced(split, g.runners)
	var prefs []string
	for _, addr := range g.runners {
		prefs = append(prefs, fmt.Sprintf("%s prefers bundles %v", filepath.Base(addr), split[addr]))
	}
	t.Logf("%s; scale-out load uses bundles %v (content hashes %v)", strings.Join(prefs, ", "), spread, pick(hashes, spread))

	m := &measurer{t: t, ctx: ctx, cfg: cfg, st: st}
	run := m.run
	isHello := func(status int, body []byte) error {
		if status != first.status || !bytes.Equal(body, first.body) {
			return fmt.Errorf("want %d %q", first.status, first.body)
		}
		return nil
	}
	endpointOf := func(path string, tenants ...int) func(w int) (*http.Request, error) {
		toks := make([]string, len(tenants))
		for i, n := range tenants {
			toks[i] = g.token(t, benchTenant(n))
		}
		return func(w int) (*http.Request, error) {
			i := w % len(tenants)
			return g.request(toks[i], "/api/ext/"+benchExtension(tenants[i])+path)
		}
	}
	okOf := func(tenants ...int) func(w int) (*http.Request, error) { return endpointOf("/ok", tenants...) }
	spinOf := func(tenants ...int) func(w int) (*http.Request, error) { return endpointOf("/spin", tenants...) }
	isSpin := func(status int, body []byte) error {
		if status != http.StatusOK || string(body) != "hello" {
			return fmt.Errorf(`want 200 "hello"`)
		}
		return nil
	}

	// 1. End to end next to the plain reverse proxy, gateway with one
	// runner (the bundle's preferred one).
	one := g.runners[:1]
	g.load(t, one)
	base := run("caddy reverse_proxy → Go stub", cfg.concurrency, func(int) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, g.baselineURL+"/ok", nil)
	}, isHello)
	trivial := run("extedge → runnerd → ok.wat, 1 runner", cfg.concurrency, okOf(0), isHello)
	demoTok := g.token(t, st.Tenant)
	sample := run("extedge → runnerd → sample GET /agreements, 1 runner", cfg.concurrency, func(int) (*http.Request, error) {
		return g.request(demoTok, "/api/ext/"+st.ExtensionID+"/agreements?page=1&page_size=1")
	}, func(status int, body []byte) error {
		if status != http.StatusOK || !bytes.Contains(body, []byte(`"page_size":1`)) {
			return fmt.Errorf("want 200 with page_size 1")
		}
		return nil
	})

	// 2. Scale-out: the bundles spread over both runners, gateway with one
	// runner, then with two.
	// Both with ok.wat (the gateway's share of the CPU is large) and
	// with the CPU-bound /spin (the runners' share dominates).
	scale1 := run(fmt.Sprintf("extedge, %d bundles /ok, 1 runner", len(spread)), cfg.concurrency, okOf(spread...), isHello)
	spin1 := run(fmt.Sprintf("extedge, %d bundles /spin, 1 runner", len(spread)), cfg.concurrency, spinOf(spread...), isSpin)
	g.load(t, g.runners)
	before := g.runnerRequests(t)
	scale2 := run(fmt.Sprintf("extedge, %d bundles /ok, 2 runners", len(spread)), cfg.concurrency, okOf(spread...), isHello)
	after := g.runnerRequests(t)
	spin2 := run(fmt.Sprintf("extedge, %d bundles /spin, 2 runners", len(spread)), cfg.concurrency, spinOf(spread...), isSpin)
	var perRunner []string
	for _, addr := range g.runners {
		perRunner = append(perRunner, fmt.Sprintf("%s: %d", filepath.Base(addr), after[addr]-before[addr]))
	}
	single2 := run("extedge → runnerd → ok.wat, 2 runners", cfg.concurrency, okOf(0), isHello)

	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	lat := func(a, b time.Duration) string { return ratio(float64(a), float64(b)) }
	summary := []string{
		fmt.Sprintf("end to end (ok.wat) vs reverse_proxy baseline: throughput %s, p50 %s, p99 %s",
			ratio(trivial.RPS, base.RPS), lat(trivial.P50, base.P50), lat(trivial.P99, base.P99)),
		fmt.Sprintf("end to end (sample /agreements) vs reverse_proxy baseline: throughput %s, p50 %s, p99 %s",
			ratio(sample.RPS, base.RPS), lat(sample.P50, base.P50), lat(sample.P99, base.P99)),
		fmt.Sprintf("scale-out, trivial /ok, 2 runners vs 1 (bundles %v, %s): throughput %s (target >= 1.7x); calls per runner with 2: %s",
			spread, strings.Join(prefs, ", "), ratio(scale2.RPS, scale1.RPS), strings.Join(perRunner, ", ")),
		fmt.Sprintf("scale-out, CPU-bound /spin (%d iterations), 2 runners vs 1: throughput %s (target >= 1.7x), p99 %s",
			spinIterations, ratio(spin2.RPS, spin1.RPS), lat(spin2.P99, spin1.P99)),
		fmt.Sprintf("single bundle, 2 runners vs 1: throughput %s (rendezvous keeps one bundle on one runner until it answers concurrency_limited)",
			ratio(single2.RPS, trivial.RPS)),
	}
	procs := "Go default"
	if cfg.runnerProcs != "" {
		procs = cfg.runnerProcs
	}
	t.Logf("summary (warm-up %v, window %v, runner GOMAXPROCS %s, load generator in-process on the same %d CPUs; load average at end %s):\n%s\n%s\n\n%s",
		cfg.warmup, cfg.duration, procs, runtime.NumCPU(), loadavg(), Table(m.rows), cpuTable(m.cpuRows), strings.Join(summary, "\n"))
}

// measurer runs load scenarios against one stack and keeps their rows.
type measurer struct {
	t       *testing.T
	ctx     context.Context
	cfg     settings
	st      *devstack.Stack
	rows    []Row
	cpuRows []cpuRow
}

// run measures one scenario: a warm-up, then the window bracketed by CPU
// snapshots. It fails the test when most requests failed.
func (m *measurer) run(name string, c int, req func(w int) (*http.Request, error), check func(int, []byte) error) Row {
	t := m.t
	t.Helper()
	// The warm-up is its own run on the same client, so the CPU
	// snapshots bracket the measured window only.
	client := NewClient(c)
	if _, err := Run(m.ctx, Load{Concurrency: c, Duration: m.cfg.warmup, Client: client, Request: req, Check: check}); err != nil {
		t.Fatalf("%s: warm-up: %v", name, err)
	}
	cpu0 := takeCPU(m.st.DataDir)
	res, err := Run(m.ctx, Load{Concurrency: c, Duration: m.cfg.duration, Client: client, Request: req, Check: check})
	cpu1 := takeCPU(m.st.DataDir)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	row := Row{Name: fmt.Sprintf("%s (c=%d)", name, c), Result: res}
	m.cpuRows = append(m.cpuRows, cpuRow{name: row.Name, requests: res.Requests - res.Errors, wall: res.Elapsed, delta: diffCPU(cpu0, cpu1)})
	if res.Errors > 0 {
		// Shed load (runners_busy when a tenant's concurrency cap
		// is reached) is a measured outcome, reported in the row; a
		// scenario that mostly failed measured nothing.
		row.Note = fmt.Sprintf("statuses %v, first error: %s", res.Statuses, res.FirstError)
		if res.Errors*2 > res.Requests {
			t.Errorf("%s: %d of %d requests failed: %s", name, res.Errors, res.Requests, res.FirstError)
		}
	}
	t.Logf("%s", strings.TrimSpace(Table([]Row{row})))
	m.rows = append(m.rows, row)
	return row
}

func pick(all []string, idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, all[i][:min(len(all[i]), 19)]+"…")
	}
	return out
}

// balanced picks bundles so that each runner is the preferred one of the
// same number of them (at most 2 each). If one runner prefers none, every
// bundle is used and the ratio says so.
func balanced(split map[string][]int, runners []string) []int {
	n := 2
	for _, r := range runners {
		n = min(n, len(split[r]))
	}
	if n == 0 {
		out := []int{}
		for i := range benchExtensions {
			out = append(out, i)
		}
		return out
	}
	var out []int
	for _, r := range runners {
		out = append(out, split[r][:n]...)
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// publishBench packs, signs (with devstack's publisher key) and publishes
// the benchmark extensions; it returns their content hashes.
func publishBench(t *testing.T, st *devstack.Stack, slowURL string) []string {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(st.DataDir, "keys", "publisher.key"))
	if err != nil {
		t.Fatalf("devstack publisher key: %v", err)
	}
	key, err := signing.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ok := guests.MustWasm(t, "ok.wat", nil)
	loop := guests.MustWasm(t, "loop.wat", nil)
	files := map[string][]byte{
		"dist/handlers/ok.wasm":   ok,
		"dist/handlers/loop.wasm": loop,
		"dist/handlers/spin.wasm": spinWasm(t, spinIterations),
		"dist/handlers/burn.wasm": spinWasm(t, burnIterations),
		"dist/handlers/huge.wasm": hugeWasm(t),
	}
	endpoints := []map[string]any{
		{"method": "GET", "path": "/ok", "handler": "dist/handlers/ok"},
		{"method": "GET", "path": "/loop", "handler": "dist/handlers/loop", "timeout_ms": loopTimeoutMS},
		{"method": "GET", "path": "/spin", "handler": "dist/handlers/spin"},
		{"method": "GET", "path": "/burn", "handler": "dist/handlers/burn", "timeout_ms": burnTimeoutMS},
		{"method": "GET", "path": "/huge", "handler": "dist/handlers/huge"},
	}
	caps := []string{}
	if slowURL != "" {
		files["dist/handlers/slow.wasm"] = guests.HostCall(t, "http.fetch", `{"url":"`+slowURL+`/slow"}`)
		endpoints = append(endpoints, map[string]any{"method": "GET", "path": "/slow", "handler": "dist/handlers/slow", "timeout_ms": slowTimeoutMS})
		caps = []string{"http.fetch"}
	}
	var hashes []string
	for i := range benchExtensions {
		manifest, _ := json.Marshal(map[string]any{
			"name": benchExtension(i), "publisher": benchPublisher, "version": "1.0.0", "runtime": "wasm@1",
			"capabilities": caps,
			"api":          map[string]any{"endpoints": endpoints},
		})
		dir := t.TempDir()
		files["manifest.json"] = manifest
		for name, data := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var archive bytes.Buffer
		hash, err := bundle.Pack(dir, &archive)
		if err != nil {
			t.Fatalf("packing %s: %v", benchExtension(i), err)
		}
		sig, err := signing.Sign(key, hash)
		if err != nil {
			t.Fatal(err)
		}
		res, err := st.Registry().Publish(context.Background(), bytes.NewReader(archive.Bytes()), int64(archive.Len()), sig.Marshal())
		if err != nil {
			t.Fatalf("publishing %s: %v", benchExtension(i), err)
		}
		hashes = append(hashes, res.ContentHash)
	}
	return hashes
}

// gateway drives the stack's Caddy: its config (swapped through the admin
// API) and requests to it.
type gateway struct {
	st        *devstack.Stack
	caddyfile string   // devstack's Caddyfile
	runners   []string // the runners line's addresses
	client    *http.Client
	tokens    map[string]string

	baselinePort     int
	baselineURL      string
	baselineUpstream string // host:port of the stub; "" until it runs

	// tenantConcurrency, when > 0, is set as the gateway's
	// tenant_concurrency; 0 keeps the default (2 × runners).
	tenantConcurrency int
}

var (
	runnersLine = regexp.MustCompile(`(?m)^(\s*runners )([^{\n]+?)( \{)$`)
	rateLine    = regexp.MustCompile(`(?m)^(\s*per_(?:tenant|extension) )\S+ burst \S+$`)
)

func newGateway(t *testing.T, st *devstack.Stack) *gateway {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(st.DataDir, "Caddyfile"))
	if err != nil {
		t.Fatalf("devstack Caddyfile: %v", err)
	}
	g := &gateway{st: st, caddyfile: string(b), client: NewClient(4), tokens: map[string]string{}}
	m := runnersLine.FindStringSubmatch(g.caddyfile)
	if m == nil {
		t.Fatalf("no `runners … {` line in devstack's Caddyfile:\n%s", g.caddyfile)
	}
	g.runners = strings.Fields(m[2])
	if len(g.runners) < 2 {
		t.Fatalf("devstack started %d runners, want 2", len(g.runners))
	}
	if len(rateLine.FindAllString(g.caddyfile, -1)) != 2 {
		t.Fatalf("no per_tenant/per_extension rate lines in devstack's Caddyfile:\n%s", g.caddyfile)
	}
	g.baselinePort = testenv.FreePort(t)
	g.baselineURL = fmt.Sprintf("http://127.0.0.1:%d", g.baselinePort)
	return g
}

// load swaps Caddy's config to devstack's with the given runners, the
// demo's rate limits raised out of the way (the limiter still runs on
// every request; the benchmark measures the data path, not the 200 r/s
// demo policy), g.tenantConcurrency when set, and, once the stub runs, the
// baseline site.
func (g *gateway) load(t *testing.T, runners []string) {
	t.Helper()
	cfg := runnersLine.ReplaceAllString(g.caddyfile, "${1}"+strings.Join(runners, " ")+"${3}")
	cfg = rateLine.ReplaceAllString(cfg, "${1}1000000r/s burst 1000000")
	if g.tenantConcurrency > 0 {
		if !strings.Contains(cfg, "\textedge {\n") {
			t.Fatalf("no `extedge {` line in devstack's Caddyfile:\n%s", cfg)
		}
		cfg = strings.Replace(cfg, "\textedge {\n", fmt.Sprintf("\textedge {\n\t\ttenant_concurrency %d\n", g.tenantConcurrency), 1)
	}
	if g.baselineUpstream != "" {
		cfg += fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\treverse_proxy %s\n}\n", g.baselinePort, g.baselineUpstream)
	}
	req, _ := http.NewRequest(http.MethodPost, g.st.AdminURL+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("caddy /load: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("caddy /load: %s: %s\nconfig:\n%s", resp.Status, body, cfg)
	}
	if g.baselineUpstream != "" {
		testenv.WaitFor(t, 10*time.Second, func() error {
			c, err := net.Dial("tcp", strings.TrimPrefix(g.baselineURL, "http://"))
			if err != nil {
				return err
			}
			return c.Close()
		})
	}
	// The config took when the status shows exactly these runners.
	testenv.WaitFor(t, 10*time.Second, func() error {
		got := g.runnerRequests(t)
		if len(got) != len(runners) {
			return fmt.Errorf("status lists runners %v, want %v", got, runners)
		}
		return nil
	})
}

// runnerRequests reads the per-runner request counters from Caddy's
// /extedge/status, keyed by the configured address.
func (g *gateway) runnerRequests(t *testing.T) map[string]int64 {
	t.Helper()
	resp, err := g.client.Get(g.st.AdminURL + "/extedge/status")
	if err != nil {
		t.Fatalf("/extedge/status: %v", err)
	}
	defer resp.Body.Close()
	var s struct {
		Runners []struct {
			Address  string `json:"address"`
			Requests int64  `json:"requests"`
		} `json:"runners"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/extedge/status: %v", err)
	}
	out := map[string]int64{}
	for _, r := range s.Runners {
		out[r.Address] += r.Requests
	}
	return out
}

func (g *gateway) token(t *testing.T, tenant string) string {
	t.Helper()
	tok, err := g.st.SessionToken(tenant)
	if err != nil {
		t.Fatalf("session token for %s: %v", tenant, err)
	}
	return tok
}

func (g *gateway) request(token, path string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, g.st.GatewayURL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req, nil
}

// reply is a recorded gateway response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// get sends one request as tenant and fails unless it is a 2xx.
func (g *gateway) get(t *testing.T, tenant, path string) reply {
	t.Helper()
	req, _ := g.request(g.token(t, tenant), path)
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s as %s: %s %s", path, tenant, resp.Status, body)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

// replay serves r's status, headers and body (Caddy adds Date and
// Content-Length itself, as it does for the gateway).
func replay(r reply) http.Handler {
	h := r.header.Clone()
	for _, k := range []string{"Date", "Content-Length", "Server", "Via"} {
		h.Del(k)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(r.status)
		w.Write(r.body)
	})
}

// startStack builds registryd, runnerd and caddy, starts devstack with two
// runners on free ports in a temporary data directory, and stops it when
// the test ends (logging the stack's log tails on failure). A non-empty
// gomaxprocs is the runners' GOMAXPROCS; egress entries are added to their
// egress allowlist (private addresses allowed).
func startStack(t *testing.T, gomaxprocs string, egress ...string) *devstack.Stack {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	for name, pkg := range map[string]string{"registryd": "./registryd", "runnerd": "./runnerd", "caddy": "./cmd/caddy"} {
		bin := testenv.Binary(t, pkg)
		if name == "runnerd" && gomaxprocs != "" {
			// devstack starts bin/runnerd with the test's environment;
			// a wrapper gives the runners alone their own GOMAXPROCS
			// (and execs, so the process is runnerd itself).
			script := fmt.Sprintf("#!/bin/sh\nGOMAXPROCS=%s exec %s \"$@\"\n", gomaxprocs, bin)
			if err := os.WriteFile(filepath.Join(binDir, name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Symlink(bin, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// Not t.TempDir: its parents are mode 0700, and the embedded
	// PostgreSQL runs as the postgres user when tests run as root.
	dataDir, err := os.MkdirTemp("", "extedge-bench-e2e-")
	if err == nil {
		err = os.Chmod(dataDir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	var log bytes.Buffer
	st, err := devstack.Start(ctx, devstack.Options{
		Root: root, BinDir: binDir, DataDir: dataDir, Runners: 2,
		GatewayPort: -1, PSAPort: -1, RegistryPort: -1, AdminPort: -1, Log: &log, Egress: egress,
	})
	if err != nil {
		t.Fatalf("starting the stack: %v\n%s%s", err, log.String(), logTails(func(n string) string {
			return filepath.Join(dataDir, "logs", n+".log")
		}))
	}
	t.Cleanup(st.Stop)
	t.Cleanup(func() {
		if name, err, ok := st.Exited(); ok {
			t.Errorf("stack process %s exited during the benchmark: %v", name, err)
		}
		if t.Failed() {
			t.Logf("stack logs:%s", logTails(st.LogPath))
		}
	})
	t.Logf("stack up in %v (gateway %s)", time.Since(t0).Round(time.Millisecond), st.GatewayURL)
	return st
}

func logTails(path func(string) string) string {
	var b strings.Builder
	for _, n := range []string{"registryd", "runnerd-0", "runnerd-1", "caddy"} {
		data, err := os.ReadFile(path(n))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "\n--- %s (last lines)\n%s", n, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}
