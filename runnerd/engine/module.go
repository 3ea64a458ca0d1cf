package engine

import (
	"fmt"
	"os"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Module is a compiled guest module with what the ABI needs to know about
// its exports, computed once at compile time.
type Module struct {
	wt      *wasmtime.Module
	wasi    bool
	init    bool // exports _initialize () -> ()
	dealloc bool // exports dealloc (i32, i32) -> ()
	// exportErr holds the ABI problem of each function export that a handler
	// could name ("" when it fits); names not in the map are missing.
	exports map[string]string
	memOK   bool
	allocOK bool
	// Size is the compiled size in bytes (serialized), for cache
	// accounting; 0 when unknown.
	Size int64
}

// Compile validates and compiles wasm for this engine.
func (e *Engine) Compile(wasm []byte) (*Module, error) {
	m, err := wasmtime.NewModule(e.wt, wasm)
	if err != nil {
		return nil, fmt.Errorf("compiling module: %v", trimBacktrace(err.Error()))
	}
	return inspect(m, int64(len(wasm))), nil
}

// Deserialize loads a module serialized by Serialize on an engine with the
// same fingerprint. The bytes must come from a trusted source (the runner's
// own cache): they are native code.
func (e *Engine) Deserialize(b []byte) (*Module, error) {
	m, err := wasmtime.NewModuleDeserialize(e.wt, b)
	if err != nil {
		return nil, fmt.Errorf("deserializing module: %v", trimBacktrace(err.Error()))
	}
	return inspect(m, int64(len(b))), nil
}

// DeserializeFile is Deserialize from a file; wasmtime maps the file
// instead of copying it, which makes a disk-cache hit of a large module
// about thirty times faster than reading it first.
func (e *Engine) DeserializeFile(path string) (*Module, error) {
	m, err := wasmtime.NewModuleDeserializeFile(e.wt, path)
	if err != nil {
		return nil, fmt.Errorf("deserializing module: %v", trimBacktrace(err.Error()))
	}
	size := int64(0)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	return inspect(m, size), nil
}

// Serialize returns the module's native code for the disk cache.
func (m *Module) Serialize() ([]byte, error) { return m.wt.Serialize() }

// Close frees the compiled code once no call uses the module any more.
// Modules evicted from a cache are left to the garbage collector instead,
// because a running call may still hold them.
func (m *Module) Close() { m.wt.Close() }

func inspect(m *wasmtime.Module, size int64) *Module {
	mod := &Module{wt: m, exports: map[string]string{}, Size: size}
	for _, im := range m.Imports() {
		if im.Module() == "wasi_snapshot_preview1" {
			mod.wasi = true
		}
	}
	for _, ex := range m.Exports() {
		name := ex.Name()
		et := ex.Type()
		if et.MemoryType() != nil && name == "memory" {
			mod.memOK = true
			continue
		}
		ft := et.FuncType()
		if ft == nil {
			continue
		}
		params, results := kinds(ft.Params()), kinds(ft.Results())
		switch name {
		case "alloc":
			mod.allocOK = params == "i32" && results == "i32"
		case "dealloc":
			mod.dealloc = params == "i32,i32" && results == ""
		case "_initialize":
			mod.init = params == "" && results == ""
		}
		if params == "i32,i32,i32" && results == "i32" {
			mod.exports[name] = ""
		} else {
			mod.exports[name] = fmt.Sprintf("export %q has type (%s) -> (%s), want (i32,i32,i32) -> (i32)", name, params, results)
		}
	}
	return mod
}

func kinds(vs []*wasmtime.ValType) string {
	s := ""
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		s += kindName(v.Kind())
	}
	return s
}

// kindName is ValKind.String without its panic on kinds it does not know
// (v128, GC references): a guest must not crash the runner.
func kindName(k wasmtime.ValKind) string {
	switch k {
	case wasmtime.KindI32, wasmtime.KindI64, wasmtime.KindF32, wasmtime.KindF64,
		wasmtime.KindExternref, wasmtime.KindFuncref:
		return k.String()
	}
	return fmt.Sprintf("kind%d", int(k))
}

// checkABI reports why the module cannot serve export as a handler.
func (m *Module) checkABI(export string) string {
	switch {
	case !m.memOK:
		return "module does not export memory"
	case !m.allocOK:
		return "module does not export alloc(i32) -> i32"
	}
	why, ok := m.exports[export]
	if !ok {
		return fmt.Sprintf("module does not export handler %q", export)
	}
	return why
}
