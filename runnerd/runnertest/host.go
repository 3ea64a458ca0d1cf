// Package runnertest runs guests for tests on the runner's real engine and
// host capabilities (runnerd/hostapi/*), so tests outside runnerd (the Go
// SDK's wasm tests, the sample extension) exercise the production ABI
// instead of a hand-written `alga` host. Only storage is replaced — by an
// in-memory store with registryd's §7.6 semantics — unless the test passes
// a real registry client.
package runnertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/hostapi/httpfetch"
	"github.com/extedge/extedge/runnerd/hostapi/kv"
	hostlog "github.com/extedge/extedge/runnerd/hostapi/log"
	hostmetrics "github.com/extedge/extedge/runnerd/hostapi/metrics"
	"github.com/extedge/extedge/runnerd/hostapi/secrets"
)

// Config configures a Host.
type Config struct {
	// Egress is the platform egress allowlist of http.fetch (SPEC §5.3
	// entry syntax). Entries are also allowed to reach private addresses,
	// so local test servers ("http://127.0.0.1:port") can be listed.
	Egress []string
	// Resolver resolves host names for http.fetch; nil means DNS.
	Resolver egress.Resolver
	// Store backs storage.kv; nil means a fresh MemoryKV (Host.KV).
	Store kv.Store
	// Budgets and Limits apply to every call; zero fields take the
	// runner's defaults.
	Budgets hostapi.Budgets
	Limits  engine.Limits
}

// Host is an engine with the production host units.
type Host struct {
	Engine *engine.Engine
	// KV is the in-memory store when Config.Store is nil.
	KV *MemoryKV

	cfg     Config
	keys    *secretbox.Keys
	mu      sync.Mutex
	secrets map[string]string
}

// NewHost builds the engine and units; the engine is closed when the test
// ends.
func NewHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	list, err := egress.ParseList(cfg.Egress)
	if err != nil {
		t.Fatalf("runnertest: egress allowlist: %v", err)
	}
	fetch, err := httpfetch.New(httpfetch.Config{Policy: egress.NewPolicy(list, list, cfg.Resolver)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secretbox.ParseKey(secretbox.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{cfg: cfg, keys: keys, secrets: map[string]string{}}
	store := cfg.Store
	if store == nil {
		h.KV = NewMemoryKV()
		store = h.KV
	}
	set, err := hostapi.NewSet(hostlog.Capability{}, hostmetrics.Capability{}, fetch, kv.New(store), secrets.New(keys, nil))
	if err != nil {
		t.Fatal(err)
	}
	if h.Engine, err = engine.New(engine.Config{}, set); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Engine.Close)
	return h
}

// SetSecret sets the install secret key to value for later calls; an
// empty value deletes it. Secrets reach the guest the production way: sealed
// into each call's envelope for its tenant and install.
func (h *Host) SetSecret(key, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if value == "" {
		delete(h.secrets, key)
		return
	}
	h.secrets[key] = value
}

// Compile compiles a wasm module for the host's engine.
func (h *Host) Compile(t testing.TB, wasm []byte) *engine.Module {
	t.Helper()
	m, err := h.Engine.Compile(wasm)
	if err != nil {
		t.Fatalf("runnertest: compiling module: %v", err)
	}
	return m
}

// Call is the outcome of one Run.
type Call struct {
	// Response is the guest's response; nil when Err is set.
	Response *execapi.Response
	// Err is the call's failure, an *execapi.Error with its §6.2 code.
	Err error
	// Report is what the host units produced: logs, egress, metrics.
	Report hostapi.Report
	// Stats are the engine's timings.
	Stats engine.Stats
}

// Run calls the module's handler export for env on a fresh instance, as
// runnerd does: the guest sees the envelope's context, request, endpoint,
// config and (with user.read) user; the host units see the envelope's
// grants and allowlist, and the sealed secrets of SetSecret.
func (h *Host) Run(t testing.TB, m *engine.Module, env *execapi.Request) *Call {
	t.Helper()
	request, err := env.GuestJSON()
	if err != nil {
		t.Fatal(err)
	}
	sealed := *env
	if env.SecretEnvelope == nil {
		h.mu.Lock()
		s, err := h.keys.SealEnvelope(env.Context.TenantID, env.Context.InstallID, h.secrets, time.Now().Add(time.Hour))
		h.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		sealed.SecretEnvelope = &s
	}
	inv := hostapi.NewInvocation(context.Background(), &sealed, h.cfg.Budgets)
	res, err := h.Engine.Run(context.Background(), m, "handler", request, h.cfg.Limits, inv)
	return &Call{Response: res.Response, Err: err, Report: res.Host, Stats: res.Stats}
}
