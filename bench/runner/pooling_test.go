package runner

import (
	"encoding/json"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/engine"
)

// The pooling instance allocator (SPEC §6.5) on and off, measured in one
// run:
//
//	go test -run '^$' -bench BenchmarkReportPooling ./bench/runner
//	go test -run '^$' -bench 'Pooling' ./bench/runner

var poolingOff = engine.Config{Pooling: engine.Pooling{Off: true}}

func benchExecute(b *testing.B, cfg engine.Config, socket bool) {
	r := newRigWith(b, trivial(b), 64, 64, cfg)
	defer r.stop()
	call := r.inProcess
	if socket {
		call = r.overSocket
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		call(b)
	}
}

func benchHelloWith(b *testing.B, wasm []byte, cfg engine.Config) {
	r := newHelloRigWith(b, wasm, cfg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.call(b)
	}
}

func BenchmarkPoolingExecuteInProcess(b *testing.B)   { benchExecute(b, engine.Config{}, false) }
func BenchmarkNoPoolingExecuteInProcess(b *testing.B) { benchExecute(b, poolingOff, false) }
func BenchmarkPoolingExecuteUnixSocket(b *testing.B)  { benchExecute(b, engine.Config{}, true) }
func BenchmarkNoPoolingExecuteUnixSocket(b *testing.B) {
	benchExecute(b, poolingOff, true)
}
func BenchmarkPoolingHelloGoFresh(b *testing.B)   { benchHelloWith(b, hello(b), engine.Config{}) }
func BenchmarkNoPoolingHelloGoFresh(b *testing.B) { benchHelloWith(b, hello(b), poolingOff) }

// BenchmarkReportPooling prints per-call times with the pooling allocator on
// and off, next to the bare wasmtime-go loop (no pooling), alternating
// rounds so drift on a shared machine hits both alike. It asserts no
// timing (go test -bench runs it; benchmarks never run in make test).
func BenchmarkReportPooling(b *testing.B) {
	if b.N > 1 {
		return // one report per run; it times its cases itself
	}
	t := b
	per := func(f func(*testing.B)) float64 {
		res := testing.Benchmark(f)
		return float64(res.T.Nanoseconds()) / float64(res.N)
	}
	goWasm := hello(t)
	bare := func(b *testing.B) {
		r := newRig(b, trivial(b), 64)
		defer r.stop()
		req, _ := json.Marshal(execapi.GuestRequest{Context: r.env.Context, HTTP: r.env.HTTP, Endpoint: r.env.Endpoint})
		bb := newBare(b, trivial(b), req)
		defer close(bb.stop)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bb.call(b)
		}
	}
	const rounds = 3
	var bareNs, inOn, inOff, sockOn, sockOff, goOn, goOff float64
	for i := 0; i < rounds; i++ {
		bareNs += per(bare) / rounds
		inOn += per(func(b *testing.B) { benchExecute(b, engine.Config{}, false) }) / rounds
		inOff += per(func(b *testing.B) { benchExecute(b, poolingOff, false) }) / rounds
		sockOn += per(func(b *testing.B) { benchExecute(b, engine.Config{}, true) }) / rounds
		sockOff += per(func(b *testing.B) { benchExecute(b, poolingOff, true) }) / rounds
		goOn += per(func(b *testing.B) { benchHelloWith(b, goWasm, engine.Config{}) }) / rounds
		goOff += per(func(b *testing.B) { benchHelloWith(b, goWasm, poolingOff) }) / rounds
	}
	t.Logf("trivial guest, /v1/execute in process: pooling %.1f µs, no pooling %.1f µs (%.2fx) | bare wasmtime-go loop %.1f µs: pooling %.2fx of it (target <= 0.7x), no pooling %.2fx",
		inOn/1e3, inOff/1e3, inOn/inOff, bareNs/1e3, inOn/bareNs, inOff/bareNs)
	t.Logf("trivial guest over the unix socket: pooling %.1f µs, no pooling %.1f µs (%.2fx) | %.2fx and %.2fx of the bare loop (target <= 2.0x)",
		sockOn/1e3, sockOff/1e3, sockOn/sockOff, sockOn/bareNs, sockOff/bareNs)
	t.Logf("Go hello (%.2f MB), fresh instance per call in process (engine.Run): pooling %.1f µs, no pooling %.1f µs (%.2fx; target <= 350 µs)",
		float64(len(goWasm))/1e6, goOn/1e3, goOff/1e3, goOn/goOff)
}
