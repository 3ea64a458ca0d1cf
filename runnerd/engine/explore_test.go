package engine

import (
	"testing"
	"time"
	"fmt"

	wt "github.com/bytecodealliance/wasmtime-go/v39"
)

func TestExplore(t *testing.T) {
	cfg := wt.NewConfig()
	cfg.SetEpochInterruption(true)
	cfg.SetConsumeFuel(true)
	eng := wt.NewEngineWithConfig(cfg)
	go func() { for { time.Sleep(10 * time.Millisecond); eng.IncrementEpoch() } }()
	wats := map[string]string{
		"loop": `(module (func (export "f") (loop br 0)))`,
		"unreach": `(module (func (export "f") unreachable))`,
		"rec": `(module (func $r (export "f") call $r))`,
		"oob": `(module (memory 1) (func (export "f") i32.const 100000 i32.load drop))`,
		"grow": `(module (memory 1) (func (export "f") (loop (memory.grow (i32.const 1)) i32.const -1 i32.ne br_if 0) unreachable))`,
		"bigmem": `(module (memory 2000) (func (export "f")))`,
		"div0": `(module (func (export "f") i32.const 1 i32.const 0 i32.div_s drop))`,
	}
	for name, w := range wats {
		wasm, err := wt.Wat2Wasm(w)
		if err != nil { t.Fatal(err) }
		m, err := wt.NewModule(eng, wasm)
		if err != nil { t.Fatal(err) }
		for _, fuel := range []uint64{0, 100000} {
		st := wt.NewStore(eng)
		st.Limiter(64<<20, -1, -1, -1, -1)
		st.SetEpochDeadline(10)
		if fuel > 0 { st.SetFuel(fuel) } else { st.SetFuel(1<<62) }
		inst, err := wt.NewInstance(st, m, nil)
		if err != nil { fmt.Printf("%s inst err %T %v\n", name, err, err); st.Close(); continue }
		_, err = inst.GetFunc(st, "f").Call(st)
		if tr, ok := err.(*wt.Trap); ok {
			c := tr.Code()
			cc := -1
			if c != nil { cc = int(*c) }
			fmt.Printf("%s fuel=%d trap code=%d msg=%q\n", name, fuel, cc, tr.Message())
		} else {
			fmt.Printf("%s fuel=%d err %T %v\n", name, fuel, err, err)
		}
		if mem := inst.GetExport(st, "memory"); mem != nil {}
		st.Close()
		}
	}
}
