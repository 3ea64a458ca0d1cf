package runner

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// The AssemblyScript hello (examples/hello-as) next to the Go hello
// (examples/hello), both through runnerd/engine in process with a fresh
// instance per call (the default), with the same request:
//
//	go test -run '^$' -bench BenchmarkReportHelloAS ./bench/runner
//	go test -run '^$' -bench 'Hello(AS|Go)' ./bench/runner

func helloAS(tb testing.TB) []byte {
	root, err := testenv.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return testenv.AssemblyScript(tb, filepath.Join(root, "examples", "hello-as"))
}

// helloRig is one engine with the production host set and a compiled hello.
type helloRig struct {
	eng *engine.Engine
	mod *engine.Module
	req []byte
	env *execapi.Request
}

func newHelloRig(tb testing.TB, wasm []byte) *helloRig {
	tb.Helper()
	return newHelloRigWith(tb, wasm, engine.Config{})
}

// newHelloRigWith is newHelloRig with the engine configured by cfg.
func newHelloRigWith(tb testing.TB, wasm []byte, cfg engine.Config) *helloRig {
	tb.Helper()
	eng, err := engine.New(cfg, hostSet(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	mod, err := eng.Compile(wasm)
	if err != nil {
		tb.Fatal(err)
	}
	env := &execapi.Request{
		Context:  execapi.Context{RequestID: "req", TenantID: "tenant", ExtensionID: ext, InstallID: "inst", VersionID: "v1"},
		HTTP:     execapi.HTTPRequest{Method: "GET", Path: "/hello", Query: map[string]string{"name": "bench"}, Headers: map[string]string{"accept": "application/json"}},
		Endpoint: execapi.Endpoint{Method: "GET", Path: "/hello", Handler: "dist/hello", Params: map[string]string{}},
	}
	req, _ := json.Marshal(env.Guest())
	r := &helloRig{eng: eng, mod: mod, req: req, env: env}
	r.call(tb) // warm
	return r
}

func (r *helloRig) call(tb testing.TB) engine.Stats {
	inv := hostapi.NewInvocation(context.Background(), r.env, hostapi.Budgets{})
	res, err := r.eng.Run(context.Background(), r.mod, "handler", r.req, engine.Limits{}, inv)
	if err != nil || res.Response.Status/100 != 2 {
		tb.Fatalf("hello: %v", err)
	}
	return res.Stats
}

// phases averages the engine's own split of n calls: instantiation (with
// the start function or _initialize, and the request's alloc) and the
// handler.
func phases(tb testing.TB, wasm []byte, n int) (inst, guest time.Duration) {
	r := newHelloRig(tb, wasm)
	for i := 0; i < n; i++ {
		st := r.call(tb)
		inst += st.Instantiate
		guest += st.Guest
	}
	return inst / time.Duration(n), guest / time.Duration(n)
}

func benchHello(b *testing.B, wasm []byte) {
	r := newHelloRig(b, wasm)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.call(b)
	}
}

func BenchmarkHelloASFresh(b *testing.B) { benchHello(b, helloAS(b)) }
func BenchmarkHelloGoFresh(b *testing.B) { benchHello(b, hello(b)) }

// BenchmarkReportHelloAS prints module size and per-call cost of both hellos,
// measured in one run; it asserts no timing (go test -bench runs it; benchmarks never run in make test).
func BenchmarkReportHelloAS(b *testing.B) {
	if b.N > 1 {
		return // one report per run; it times its cases itself
	}
	t := b
	as, goWasm := helloAS(t), hello(t)
	per := func(wasm []byte) float64 {
		res := testing.Benchmark(func(b *testing.B) { benchHello(b, wasm) })
		return float64(res.T.Nanoseconds()) / float64(res.N)
	}
	// Alternate the two so drift on a shared machine hits both alike.
	var asNs, goNs, watNs float64
	const rounds = 3
	for i := 0; i < rounds; i++ {
		watNs += per(trivial(t)) / rounds
		asNs += per(as) / rounds
		goNs += per(goWasm) / rounds
	}
	t.Logf("module size: AssemblyScript hello %d bytes (%.1f KB), Go hello %d bytes (%.2f MB), %.1fx smaller",
		len(as), float64(len(as))/1e3, len(goWasm), float64(len(goWasm))/1e6, float64(len(goWasm))/float64(len(as)))
	asInst, asGuest := phases(t, as, 500)
	goInst, goGuest := phases(t, goWasm, 100)
	t.Logf("engine's split per call: AssemblyScript instantiate %.1f µs + handler %.1f µs | Go instantiate+_initialize %.1f µs + handler %.1f µs",
		us(asInst), us(asGuest), us(goInst), us(goGuest))
	t.Logf("per call, fresh instance, in process (runnerd/engine): AssemblyScript hello %.1f µs | Go hello %.1f µs | AS/Go %.3fx | trivial WAT guest (ok.wat) %.1f µs, AS/WAT %.2fx",
		asNs/1e3, goNs/1e3, asNs/goNs, watNs/1e3, asNs/watNs)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
