package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/envflag"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/tlsconf"
	"github.com/extedge/extedge/runnerd/cache"
	"github.com/extedge/extedge/runnerd/debugstream"
	"github.com/extedge/extedge/runnerd/deliveries"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/hostapi/httpfetch"
	"github.com/extedge/extedge/runnerd/hostapi/kv"
	hostlog "github.com/extedge/extedge/runnerd/hostapi/log"
	hostmetrics "github.com/extedge/extedge/runnerd/hostapi/metrics"
	"github.com/extedge/extedge/runnerd/hostapi/secrets"
	"github.com/extedge/extedge/runnerd/records"
	"github.com/extedge/extedge/runnerd/server"
)

// options are the serve flags. Every flag with an environment variable
// takes its default from it; the flag wins.
type options struct {
	listen             []string
	tokenFile          string
	registry           string
	registryTokenFile  string
	bundleStore        string
	cacheDir           string
	cacheMaxBytes      int64
	trustBundle        string
	trustPrecompiled   bool
	egressAllowlist    string
	egressAllowPrivate string
	secretsKeyFile     string
	redis              string
	tlsCert, tlsKey    string
	caFile             string

	timeout, maxTimeout, initTimeout time.Duration
	memoryMB, maxMemoryMB            int
	fuel                             bool
	maxFuel                          uint64
	maxRequestBytes                  int64
	maxResponseBytes                 int64
	maxFetchBytes                    int64
	maxHostCalls                     int
	maxLogBytes                      int64
	maxConcurrency, maxPerTenant     int
	maxQueuePerTenant                int
	queueWait, grace, epochTick      time.Duration
	drainDelay                       time.Duration
	metricsMaxExtensions             int
	demoteAfter                      time.Duration
	cpuProfile                       string
	reuseMaxIdle, reuseMaxPerInstall int
	pooling                          bool
	poolInstances, poolMaxMemoryMB   int
	poolKeepResidentMB               int

	registryCacheTTL, registryMaxStale time.Duration
	logLevel                           string

	deliveries                  bool
	deliveryConcurrency         int
	deliveryLease, deliveryPoll time.Duration
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set appends one address or a comma-separated list of them (the form an
// environment variable holds).
func (l *listFlag) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*l = append(*l, a)
		}
	}
	return nil
}

type sizeFlag struct{ v *int64 }

func (s sizeFlag) String() string {
	if s.v == nil {
		return "0"
	}
	return strconv.FormatInt(*s.v, 10)
}
func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

// parseSize accepts bytes or a KiB/MiB/GiB/KB/MB/GB suffix ("64MiB").
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes or a KiB/MiB/GiB suffix", s)
	}
	return n * mult, nil
}

// envAliases are the older variable names SPEC §6.1 pins, read after
// the EXTEDGE_<FLAG> name of each flag (internal/envflag).
var envAliases = map[string][]string{
	"registry":             {"REGISTRY_BASE_URL"},
	"cache-dir":            {"EXT_CACHE_ROOT"},
	"cache-max-bytes":      {"EXT_CACHE_MAX_BYTES"},
	"trust-bundle":         {"SIGNING_TRUST_BUNDLE"},
	"egress-allowlist":     {"EXT_EGRESS_ALLOWLIST"},
	"egress-allow-private": {"EXT_EGRESS_ALLOW_PRIVATE"},
	"redis":                {"RUNNER_DEBUG_REDIS_URL"},
}

// deliveryMargin is the time a delivery's call leaves between its end and
// its lease's, to report the result.
const deliveryMargin = 5 * time.Second

// runnerTokenEnv holds the runner token itself when no --token-file is
// given (SPEC §6.1). It is no flag's variable: a token on the command
// line would show in ps.
const runnerTokenEnv = "EXTEDGE_RUNNER_TOKEN"

// parseOptions parses the serve flags and their environment variables
// (envflag: EXTEDGE_<FLAG>, then the SPEC aliases); usage and errors of
// the flag package go to out.
func parseOptions(args []string, out io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("runnerd serve", flag.ContinueOnError)
	fs.SetOutput(out)
	var listen listFlag
	fs.Var(&listen, "listen", "listen address, unix:///abs/path or tcp://host:port; repeatable, or comma-separated (default unix:///run/extedge/runner-0.sock)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the runner token every /v1 call must present; without it "+runnerTokenEnv+" holds the token itself")
	fs.StringVar(&o.registry, "registry", "", "registryd base URL for KV, bundle status, revocations and execution records")
	fs.StringVar(&o.registryTokenFile, "registry-token-file", "", "file holding the service token for registryd")
	fs.DurationVar(&o.registryCacheTTL, "registry-cache-ttl", registryapi.DefaultCacheTTL, "how long a bundle status is used before registryd is asked again (the change feed invalidates sooner)")
	fs.DurationVar(&o.registryMaxStale, "registry-max-stale", registryapi.DefaultCacheMaxStale, "how long since registryd last confirmed it a bundle status keeps serving while registryd is unreachable; then calls fail with bundle_unavailable")
	fs.StringVar(&o.bundleStore, "bundle-store", "", "blob store URL: file:///dir or s3://bucket?endpoint=…; empty uses the STORAGE_S3_* environment")
	fs.StringVar(&o.cacheDir, "cache-dir", "/var/cache/extedge/runner", "cache directory for verified bundles and compiled modules")
	o.cacheMaxBytes = 2 << 30
	fs.Var(sizeFlag{&o.cacheMaxBytes}, "cache-max-bytes", "disk budget of extracted bundles, e.g. 2GiB")
	fs.StringVar(&o.trustBundle, "trust-bundle", "", "PEM trust bundle of publisher keys; required")
	fs.BoolVar(&o.trustPrecompiled, "trust-precompiled", false, "load publisher-supplied precompiled modules (native code!) instead of compiling")
	fs.StringVar(&o.egressAllowlist, "egress-allowlist", "", "comma-separated [http://]host[:port] entries http.fetch may reach")
	fs.StringVar(&o.egressAllowPrivate, "egress-allow-private", "", "entries that may resolve to private/loopback addresses (on-prem)")
	fs.StringVar(&o.secretsKeyFile, "secrets-key-file", "", "key file that opens secret envelopes (secrets.get)")
	fs.StringVar(&o.redis, "redis", "", "Redis URL for the debug stream")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate (chain) tcp:// listeners serve TLS with; needs --tls-key; Unix sockets stay plain")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA certificates the registry client trusts instead of the system roots")
	fs.DurationVar(&o.timeout, "timeout", engine.DefaultTimeout, "default guest timeout")
	fs.DurationVar(&o.maxTimeout, "max-timeout", 5*time.Minute, "largest timeout an envelope may ask for")
	fs.DurationVar(&o.initTimeout, "init-timeout", engine.DefaultInitTimeout, "deadline for instantiation and _initialize")
	fs.IntVar(&o.memoryMB, "memory-mb", 64, "default memory limit per instance, MiB")
	fs.IntVar(&o.maxMemoryMB, "max-memory-mb", 256, "largest memory limit an envelope may ask for, MiB")
	fs.BoolVar(&o.fuel, "fuel", false, "meter fuel (needed for limits.fuel; costs throughput)")
	fs.Uint64Var(&o.maxFuel, "max-fuel", 0, "largest fuel budget an envelope may ask for (0 = unbounded)")
	o.maxRequestBytes, o.maxResponseBytes, o.maxFetchBytes, o.maxLogBytes = 8<<20, 8<<20, 5<<20, 64<<10
	fs.Var(sizeFlag{&o.maxRequestBytes}, "max-request-bytes", "largest guest request JSON")
	fs.Var(sizeFlag{&o.maxResponseBytes}, "max-response-bytes", "largest guest response JSON")
	fs.Var(sizeFlag{&o.maxFetchBytes}, "max-fetch-bytes", "largest http.fetch response body")
	fs.IntVar(&o.maxHostCalls, "max-host-calls", hostapi.DefaultMaxHostCalls, "host calls per invocation")
	fs.Var(sizeFlag{&o.maxLogBytes}, "max-log-bytes", "log bytes per invocation")
	fs.IntVar(&o.maxConcurrency, "max-concurrency", 16, "calls in flight in this process (run one runnerd per core)")
	fs.IntVar(&o.maxPerTenant, "max-concurrency-per-tenant", 0, "calls in flight per tenant (default a quarter of --max-concurrency, at least 1)")
	fs.IntVar(&o.maxQueuePerTenant, "max-queue-per-tenant", 0, "calls of one tenant waiting for a slot (default --max-concurrency-per-tenant); slots go to waiting tenants fairly")
	fs.DurationVar(&o.queueWait, "queue-wait", 100*time.Millisecond, "how long a call waits for a concurrency slot before 429")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write a pprof CPU profile of the whole run to this file (%p in it becomes the pid), for benchmarks; off by default")
	fs.DurationVar(&o.demoteAfter, "demote-after", engine.DefaultDemoteAfter, "guest CPU time after which a call's thread runs at the lowest priority (SCHED_IDLE, nice 19) so that short calls of other tenants go first; 0 disables")
	fs.IntVar(&o.reuseMaxIdle, "reuse-max-idle", engine.DefaultMaxIdleInstances, "instances kept idle for installs that opt into instance reuse, in all (least recently used dropped first); 0 keeps none")
	fs.BoolVar(&o.pooling, "pooling", true, "wasmtime's pooling instance allocator with copy-on-write memory init (SPEC §6.5); false allocates each instance on demand")
	fs.IntVar(&o.poolInstances, "pool-instances", 0, "instance slots of the pool: calls in flight plus idle reused instances (default --max-concurrency + --reuse-max-idle); a call finding none free waits up to --init-timeout, then 429")
	fs.IntVar(&o.poolMaxMemoryMB, "pool-max-memory-mb", 0, "linear memory reserved per pool slot, MiB (address space, committed only as used); at least --max-memory-mb (default --max-memory-mb)")
	fs.IntVar(&o.poolKeepResidentMB, "pool-keep-resident-mb", engine.DefaultPoolKeepResidentBytes>>20, "memory per pool slot kept mapped (zeroed) between instances, MiB, so the next one does not fault it in again; costs RSS per warm slot; 0 keeps none")
	fs.IntVar(&o.reuseMaxPerInstall, "reuse-max-idle-per-install", engine.DefaultMaxIdlePerInstall, "idle instances kept per install and module")
	fs.DurationVar(&o.drainDelay, "drain-delay", 5*time.Second, "after SIGTERM, how long /readyz answers 503 while the listeners still accept calls, before they close")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "after the listeners close, how long calls in flight may take to finish")
	fs.DurationVar(&o.epochTick, "epoch-tick", 10*time.Millisecond, "epoch ticker period (deadline granularity)")
	fs.IntVar(&o.metricsMaxExtensions, "metrics-max-extensions", 100, "distinct values of the extension label on guest metrics; further extensions share \"_other\"")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.deliveries, "deliveries", true, "lease and run event deliveries from --registry (SPEC §18); without --registry there are none")
	fs.IntVar(&o.deliveryConcurrency, "delivery-concurrency", 4, "event deliveries in flight; they share --max-concurrency and the per-tenant caps with API calls")
	fs.DurationVar(&o.deliveryLease, "delivery-lease", 60*time.Second, "how long a leased delivery is held (whole seconds, 5s to 1h); must exceed --timeout plus --init-timeout by 5s, as a delivery's call ends before its lease")
	fs.DurationVar(&o.deliveryPoll, "delivery-poll", time.Second, "after an empty lease, how long before asking registryd again (±20% jitter); the longest an idle runner takes to notice an event")
	if err := envflag.Parse(fs, args, envAliases); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.listen = listen
	if o.metricsMaxExtensions < 1 {
		return nil, fmt.Errorf("--metrics-max-extensions %d: must be at least 1", o.metricsMaxExtensions)
	}
	if len(o.listen) == 0 {
		o.listen = []string{"unix:///run/extedge/runner-0.sock"}
	}
	if o.deliveryConcurrency < 1 {
		return nil, fmt.Errorf("--delivery-concurrency %d: must be at least 1", o.deliveryConcurrency)
	}
	if o.deliveryLease < deliveries.MinLease || o.deliveryLease > deliveries.MaxLease || o.deliveryLease%time.Second != 0 {
		return nil, fmt.Errorf("--delivery-lease %v: must be whole seconds from %v to %v", o.deliveryLease, deliveries.MinLease, deliveries.MaxLease)
	}
	if need := o.timeout + o.initTimeout + deliveryMargin; o.deliveryLease < need {
		return nil, fmt.Errorf("--delivery-lease %v: must be at least --timeout + --init-timeout + %v (%v), so a delivery's call ends before its lease", o.deliveryLease, deliveryMargin, need)
	}
	if o.deliveryPoll <= 0 {
		return nil, fmt.Errorf("--delivery-poll %v: must be positive", o.deliveryPoll)
	}
	if o.poolInstances < 0 {
		return nil, fmt.Errorf("--pool-instances %d: must not be negative", o.poolInstances)
	}
	if o.poolInstances == 0 {
		o.poolInstances = max(o.maxConcurrency, 1) + max(o.reuseMaxIdle, 0)
	}
	if o.poolMaxMemoryMB == 0 {
		o.poolMaxMemoryMB = o.maxMemoryMB
	}
	if o.poolMaxMemoryMB < o.maxMemoryMB || o.poolMaxMemoryMB < o.memoryMB {
		return nil, fmt.Errorf("--pool-max-memory-mb %d: must be at least --max-memory-mb (%d) and --memory-mb (%d), or a call could ask for more than a slot holds", o.poolMaxMemoryMB, o.maxMemoryMB, o.memoryMB)
	}
	if o.trustBundle == "" {
		return nil, errors.New("--trust-bundle (or " + strings.Join(envflag.Names("trust-bundle", envAliases), " or ") + ") is required: runnerd only runs signed bundles")
	}
	return o, nil
}

// readToken reads the token file given by --flagName (SPEC §15: the whole
// file, whitespace trimmed), or without one the variable envName. Errors
// name the flag and the file, never the token.
func readToken(flagName, path, envName string) (string, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--%s: %v", flagName, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--%s: %s is empty", flagName, path)
		}
		return tok, nil
	}
	if envName == "" {
		return "", nil
	}
	return strings.TrimSpace(os.Getenv(envName)), nil
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %v", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	return cfg.Build()
}

func serve(args []string) error {
	o, err := parseOptions(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()

	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	if procs, set := guestProcs(o.maxConcurrency); set {
		log.Info("GOMAXPROCS raised so calls in guests never hold every P", zap.Int("gomaxprocs", procs))
	}
	d := &daemon{o: o, log: log}
	if err := d.loadInputs(); err != nil {
		return err
	}
	if err := d.buildEngine(); err != nil {
		return err
	}
	defer d.eng.Close()
	if err := d.buildModules(); err != nil {
		return err
	}
	defer d.modules.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// A second SIGTERM or SIGINT during the drain ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	scfg, err := d.serverConfig(bg)
	if err != nil {
		return err
	}
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	workerDone, err := d.startDeliveries(ctx, srv)
	if err != nil {
		return err
	}
	listeners, err := server.ListenAll(o.listen, d.serverTLS)
	if err != nil {
		return fmt.Errorf("--listen: %v", err)
	}
	log.Info("runnerd serving", zap.Strings("listen", o.listen), zap.String("bundle_store", d.store.String()),
		zap.String("engine_fingerprint", d.eng.Fingerprint()), zap.Int("trusted_keys", d.trust.Len()),
		zap.Bool("registry", d.reg != nil), zap.Bool("debug_stream", o.redis != ""))
	// The HTTP server's own errors (failed TLS handshakes, …) as JSON too.
	httpLog, _ := zap.NewStdLogAt(log.Named("http"), zapcore.WarnLevel)
	err = server.Serve(ctx, srv, listeners, server.ServeOptions{
		ErrorLog: httpLog,
		Drain: func() {
			log.Info("runnerd draining", zap.Duration("drain_delay", o.drainDelay), zap.Duration("grace", o.grace))
			srv.Drain()
		},
		DrainDelay: o.drainDelay,
		Grace:      o.grace,
	})
	select {
	case <-workerDone:
	case <-time.After(o.grace):
		log.Warn("deliveries still in flight after the grace period; their leases will expire and they will be redelivered")
	}
	log.Info("runnerd stopped", zap.Error(err))
	cancelBG()
	return err
}

// startDeliveries starts the event delivery worker (runnerd/deliveries)
// when there is a registry and --deliveries: it stops leasing when ctx
// ends (SIGTERM) and the returned channel closes when its deliveries in
// flight are done.
func (d *daemon) startDeliveries(ctx context.Context, srv *server.Server) (<-chan struct{}, error) {
	done := make(chan struct{})
	if d.reg == nil || !d.o.deliveries {
		close(done)
		return done, nil
	}
	w, err := deliveries.New(deliveries.Config{
		Registry: d.reg, Resolver: d.modules.Registry(), Executor: srv,
		Concurrency: d.o.deliveryConcurrency, Lease: d.o.deliveryLease, Margin: deliveryMargin, Poll: d.o.deliveryPoll,
		Registerer: d.prom, Logger: d.log.Named("deliveries"),
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("running event deliveries", zap.Int("concurrency", d.o.deliveryConcurrency), zap.Duration("lease", d.o.deliveryLease))
	go func() { w.Run(ctx); close(done) }()
	return done, nil
}

// daemon holds runnerd's parts while serve builds them from the options,
// each step using the ones before it.
type daemon struct {
	o   *options
	log *zap.Logger

	// loadInputs
	token     string
	serverTLS *tls.Config // nil: plain tcp
	trust     *signing.TrustBundle
	store     blobstore.Store
	keys      *secretbox.Keys
	reg       *registryapi.Client // nil without --registry
	// buildEngine
	eng *engine.Engine
	// buildModules
	modules *cache.Cache
	prom    *prometheus.Registry
}

// loadInputs reads what the flags point at: the runner token, the TLS
// files, the trust bundle, the bundle store, the secrets key and the
// registry client. A missing or unparsable file fails here, at start,
// with its flag and path (SPEC §12).
func (d *daemon) loadInputs() error {
	o := d.o
	var err error
	if d.token, err = readToken("token-file", o.tokenFile, runnerTokenEnv); err != nil {
		return err
	}
	if d.token == "" {
		return errors.New("a runner token is required (--token-file or " + runnerTokenEnv + ")")
	}
	if d.serverTLS, err = tlsconf.Server(o.tlsCert, o.tlsKey); err != nil {
		return err
	}
	if d.serverTLS != nil && !slices.ContainsFunc(o.listen, func(a string) bool { return strings.HasPrefix(a, "tcp://") }) {
		return errors.New("--tls-cert: no tcp:// --listen address to serve TLS on (Unix sockets stay plain)")
	}
	clientTLS, err := tlsconf.Client(o.caFile)
	if err != nil {
		return fmt.Errorf("--ca-file: %v", err)
	}
	if d.trust, err = signing.LoadTrustBundle(o.trustBundle); err != nil {
		return fmt.Errorf("--trust-bundle: %v", err)
	}
	if d.store, err = blobstore.Open(o.bundleStore); err != nil {
		return fmt.Errorf("--bundle-store: %v", err)
	}
	if o.secretsKeyFile != "" {
		if d.keys, err = secretbox.LoadKeyFile(o.secretsKeyFile); err != nil {
			return fmt.Errorf("--secrets-key-file: %v", err)
		}
	}
	if o.registry != "" {
		regToken, err := readToken("registry-token-file", o.registryTokenFile, "")
		if err != nil {
			return err
		}
		var hc *http.Client
		if clientTLS != nil {
			tr := registryapi.NewTransport()
			tr.TLSClientConfig = clientTLS
			hc = &http.Client{Transport: tr}
		}
		d.reg = registryapi.New(o.registry, regToken, hc)
	}
	return nil
}

// buildEngine builds the host capabilities (egress policy, KV through the
// registry, secrets) and the engine that links them.
func (d *daemon) buildEngine() error {
	allow, err := egress.ParseCSV(d.o.egressAllowlist)
	if err != nil {
		return fmt.Errorf("--egress-allowlist: %v", err)
	}
	allowPrivate, err := egress.ParseCSV(d.o.egressAllowPrivate)
	if err != nil {
		return fmt.Errorf("--egress-allow-private: %v", err)
	}
	fetch, err := httpfetch.New(httpfetch.Config{Policy: egress.NewPolicy(allow, allowPrivate, nil), MaxResponseBytes: d.o.maxFetchBytes})
	if err != nil {
		return err
	}
	var kvStore kv.Store
	if d.reg != nil {
		kvStore = d.reg
	}
	hosts, err := hostapi.NewSet(hostlog.Capability{}, hostmetrics.Capability{}, fetch, kv.New(kvStore), secrets.New(d.keys, nil))
	if err != nil {
		return err
	}
	maxIdle := d.o.reuseMaxIdle
	if maxIdle <= 0 {
		maxIdle = -1 // the engine's "keep none"
	}
	d.eng, err = engine.New(engine.Config{EpochTick: d.o.epochTick, Fuel: d.o.fuel, DemoteAfter: d.o.demoteAfter,
		MaxIdleInstances: maxIdle, MaxIdlePerInstall: d.o.reuseMaxPerInstall,
		Pooling: engine.Pooling{Off: !d.o.pooling, Instances: d.o.poolInstances, MaxMemoryBytes: int64(d.o.poolMaxMemoryMB) << 20,
			KeepResidentBytes: keepResident(d.o.poolKeepResidentMB)}}, hosts)
	return err
}

// keepResident maps --pool-keep-resident-mb to engine.Pooling's field,
// where 0 means the default and negative none.
func keepResident(mb int) int64 {
	if mb <= 0 {
		return -1
	}
	return int64(mb) << 20
}

// startCPUProfile writes a CPU profile to path ("%p" replaced by the pid,
// so that several runners started alike write one file each) until the
// returned stop is called, when the daemon exits. Errors name the flag.
func startCPUProfile(path string) (stop func(), err error) {
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile %s: %v", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// guestProcs raises GOMAXPROCS to the cores plus maxConcurrency unless
// the GOMAXPROCS variable is set. A call in a guest is a cgo call that
// keeps its P until the runtime's monitor takes it back, which takes from
// 20 µs to 10 ms; with GOMAXPROCS at the core count, a few long calls (a
// tenant's flood of CPU spins, demoted to SCHED_IDLE) held every P and
// the short calls of other tenants waited that long for one to read their
// request (bench/e2e TestNoisyNeighbours). Spare Ps cost nothing while
// idle; the OS still decides who gets a core.
func guestProcs(maxConcurrency int) (int, bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), false
	}
	want := runtime.NumCPU() + maxConcurrency
	if want <= runtime.GOMAXPROCS(0) {
		return runtime.GOMAXPROCS(0), false
	}
	runtime.GOMAXPROCS(want)
	return want, true
}

// buildModules builds the bundle and module cache and the metrics
// registry that exports it.
func (d *daemon) buildModules() error {
	o := d.o
	ccfg := cache.Config{Dir: o.cacheDir, MaxBytes: o.cacheMaxBytes, Store: d.store, Trust: d.trust, Engine: d.eng,
		TrustPrecompiled: o.trustPrecompiled, Logger: d.log.Named("cache")}
	if d.reg != nil {
		// The status cache follows registryd's change feed itself.
		ccfg.Registry = &registryapi.CacheConfig{
			Client:   func() (*registryapi.Client, error) { return d.reg, nil },
			TTL:      o.registryCacheTTL,
			MaxStale: o.registryMaxStale,
		}
	}
	var err error
	if d.modules, err = cache.New(ccfg); err != nil {
		return fmt.Errorf("--cache-dir: %v", err)
	}
	// A cache directory that exists but is not writable would only show
	// in /readyz; refuse it at start.
	if err := d.modules.Ready(); err != nil {
		d.modules.Close()
		return fmt.Errorf("--cache-dir %s: %v", o.cacheDir, err)
	}
	d.prom = prometheus.NewRegistry()
	d.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.prom.MustRegister(cacheCollector(d.modules))
	return nil
}

// serverConfig is the execute server's configuration; the background
// work it needs (execution records, the change feed, the debug stream)
// runs until bg ends.
func (d *daemon) serverConfig(bg context.Context) (server.Config, error) {
	o := d.o
	scfg := server.Config{
		Token: d.token, Engine: d.eng, Modules: d.modules,
		DefaultLimits:   engine.Limits{Timeout: o.timeout, InitTimeout: o.initTimeout, MemoryBytes: int64(o.memoryMB) << 20, MaxResponseBytes: int(o.maxResponseBytes)},
		MaxLimits:       engine.Limits{Timeout: o.maxTimeout, MemoryBytes: int64(o.maxMemoryMB) << 20, Fuel: o.maxFuel},
		Budgets:         hostapi.Budgets{MaxHostCalls: o.maxHostCalls, MaxLogBytes: int(o.maxLogBytes)},
		MaxRequestBytes: int(o.maxRequestBytes),
		MaxConcurrency:  o.maxConcurrency, MaxConcurrencyPerTenant: o.maxPerTenant, MaxQueuePerTenant: o.maxQueuePerTenant, QueueWait: o.queueWait,
		MaxMetricExtensions: o.metricsMaxExtensions,
		Ready:               d.modules.Ready, Registerer: d.prom, Gatherer: d.prom, Logger: d.log.Named("server"),
	}
	if d.reg != nil {
		batcher := records.New(d.reg, records.Config{Logger: d.log.Named("records")})
		scfg.Records = batcher
		go batcher.Run(bg)
		d.prom.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "extedge_runner_records_dropped_total",
			Help: "Execution records dropped (full queue or failed posts)."}, func() float64 { return float64(batcher.Dropped() + batcher.Failed()) }))
	}
	if o.redis != "" {
		ds, err := debugstream.New(o.redis, d.log.Named("debugstream"))
		if err != nil {
			return scfg, fmt.Errorf("--redis: %v", err)
		}
		scfg.Logs = ds
		go ds.Run(bg)
		d.prom.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "extedge_runner_debug_lines_dropped_total",
			Help: "Debug stream lines dropped."}, func() float64 { return float64(ds.Dropped()) }))
	}
	return scfg, nil
}

// cacheCollector exports the cache counters.
func cacheCollector(c *cache.Cache) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		n := c.Counters()
		for _, m := range []struct {
			layer, result string
			v             int64
		}{
			{"memory", "hit", n.MemoryHits}, {"disk", "hit", n.DiskHits}, {"disk", "miss", n.Compiles},
			{"bundle_disk", "hit", n.BundleDiskHits}, {"bundle_disk", "miss", n.Fetches},
		} {
			ch <- prometheus.MustNewConstMetric(cacheDesc, prometheus.CounterValue, float64(m.v), m.layer, m.result)
		}
		ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(c.DiskBytes()))
	})
}

var (
	cacheDesc      = prometheus.NewDesc("extedge_runner_cache_lookups_total", "Module and bundle cache lookups by layer and result.", []string{"layer", "result"}, nil)
	cacheBytesDesc = prometheus.NewDesc("extedge_runner_cache_disk_bytes", "Bytes of extracted bundles on disk.", nil, nil)
)

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- cacheDesc; ch <- cacheBytesDesc }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// Interface guards: the wiring above relies on these.
var (
	_ server.ModuleSource = (*cache.Cache)(nil)
	_ server.RecordSink   = (*records.Batcher)(nil)
	_ server.LogSink      = (*debugstream.Stream)(nil)
	_ kv.Store            = (*registryapi.Client)(nil)
	_ records.Poster      = (*registryapi.Client)(nil)
	_ deliveries.Executor = (*server.Server)(nil)
	_ deliveries.Registry = (*registryapi.Client)(nil)
)
