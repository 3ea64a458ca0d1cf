package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/cache"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/server"
)

// The Go hello example per call in process (SPEC §13 "Go guests"): a fresh
// instance per call (the default) against opt-in instance reuse (§6.5),
// through server.Execute with the real bundle cache.
//
//	go test -run '^$' -bench 'GoHello' -benchtime 3s ./bench/runner
//	go test -run '^$' -bench BenchmarkReportReuse ./bench/runner

var (
	helloOnce sync.Once
	helloWasm []byte
	helloErr  error
)

// hello builds examples/hello for wasip1 once per test binary.
func hello(tb testing.TB) []byte {
	tb.Helper()
	helloOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "extedge-hello")
		if err != nil {
			helloErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "hello.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./examples/hello")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			helloErr = &buildError{err, string(b)}
			return
		}
		helloWasm, helloErr = os.ReadFile(out)
	})
	if helloErr != nil {
		tb.Fatal(helloErr)
	}
	return helloWasm
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "building examples/hello: " + e.err.Error() + "\n" + e.out
}

// reuseRig is a server with the hello bundle published and warmed; reuse
// puts instance_reuse in the envelope.
type reuseRig struct {
	eng *engine.Engine
	srv *server.Server
	env *execapi.Request
}

func newReuseRig(tb testing.TB, reuse bool) *reuseRig {
	tb.Helper()
	eng, err := engine.New(engine.Config{}, hostSet(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	store := bundletest.LocalStore(tb)
	pub := bundletest.NewPublisher(tb, "Acme Inc.")
	hash := pub.Publish(tb, store, map[string][]byte{
		"manifest.json":   bundletest.Manifest(ext, "Acme Inc.", "dist/hello"),
		"dist/hello.wasm": hello(tb),
	})
	c, err := cache.New(cache.Config{Dir: tb.TempDir(), Store: store, Trust: pub.Trust, Engine: eng})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{Token: token, Engine: eng, Modules: c})
	if err != nil {
		tb.Fatal(err)
	}
	r := &reuseRig{eng: eng, srv: srv, env: &execapi.Request{
		Context:  execapi.Context{RequestID: "req", TenantID: "tenant", ExtensionID: ext, InstallID: "inst", VersionID: "v1", ContentHash: hash},
		HTTP:     execapi.HTTPRequest{Method: "GET", Path: "/h0", Query: map[string]string{"name": "bench"}, Headers: map[string]string{}},
		Endpoint: execapi.Endpoint{Method: "GET", Path: "/h0", Handler: "dist/hello", Params: map[string]string{}},
		Config:   []byte(`{"greeting":"hi"}`),
	}}
	if reuse {
		r.env.InstanceReuse = &execapi.InstanceReuse{}
	}
	r.call(tb) // fetch, verify, compile
	return r
}

func (r *reuseRig) call(tb testing.TB) {
	resp, eerr := r.srv.Execute(context.Background(), r.env)
	if eerr != nil || resp.Status != 200 {
		tb.Fatalf("execute: %v %+v", eerr, resp)
	}
}

func benchmarkGoHello(b *testing.B, reuse bool) {
	r := newReuseRig(b, reuse)
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		r.call(b)
	}
	cpu = processCPU() - cpu
	b.StopTimer()
	// The process's CPU time per call (all threads, GC included) is what a
	// capacity plan needs, and unlike ns/op it does not grow when other
	// processes load the machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	if reuse {
		st := r.eng.ReuseStats()
		b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
	}
}

// BenchmarkGoHelloFresh: a fresh instance (store, instantiate,
// _initialize of the Go runtime) per call, the default.
func BenchmarkGoHelloFresh(b *testing.B) { benchmarkGoHello(b, false) }

// BenchmarkGoHelloReused: the install opted into instance reuse; at most
// one call in DefaultReuseMaxCalls (1000) makes an instance.
func BenchmarkGoHelloReused(b *testing.B) { benchmarkGoHello(b, true) }

// BenchmarkReportReuse prints fresh vs reused per call and their ratio, measured
// in one run (go test -bench runs it; it asserts no timing).
func BenchmarkReportReuse(b *testing.B) {
	if b.N > 1 {
		return // one report per run; it times its cases itself
	}
	t := b
	per := func(f func(*testing.B)) (wall, cpu float64) {
		res := testing.Benchmark(f)
		return float64(res.T.Nanoseconds()) / float64(res.N) / 1e3, res.Extra["cpu-µs/op"]
	}
	fresh, freshCPU := per(BenchmarkGoHelloFresh)
	reused, reusedCPU := per(BenchmarkGoHelloReused)
	t.Logf("Go hello (%.1f MB) per call in process: fresh instance %.1f µs wall, %.1f µs CPU (target <= 350 µs) | instance reuse %.1f µs wall, %.1f µs CPU (target <= 150 µs) | reused/fresh %.3f wall, %.3f CPU",
		float64(len(hello(t)))/1e6, fresh, freshCPU, reused, reusedCPU, reused/fresh, reusedCPU/freshCPU)
}
