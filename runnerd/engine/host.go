package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// linkHostImports defines every import of the host set (and its alias) in
// the linker, store-independently, so the same linker serves every call.
// Imports the install is not granted are linked too: the framework answers
// them with capability_denied instead of failing instantiation.
func (e *Engine) linkHostImports() error {
	if e.hosts == nil {
		return nil
	}
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	textType := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32}, nil)
	jsonType := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32}, []*wasmtime.ValType{i32})
	for _, b := range e.hosts.Imports() {
		b := b
		names := []string{b.Name}
		if b.Alias != "" {
			names = append(names, b.Alias)
		}
		for _, name := range names {
			var err error
			if b.Kind() == hostapi.KindText {
				err = e.linker.FuncNew(hostapi.ImportModule, name, textType, e.textImport(&b))
			} else {
				err = e.linker.FuncNew(hostapi.ImportModule, name, jsonType, e.jsonImport(&b))
			}
			if err != nil {
				return fmt.Errorf("linking %s.%s: %v", hostapi.ImportModule, name, err)
			}
		}
	}
	return nil
}

func (e *Engine) textImport(b *hostapi.Bound) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	return func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
		cs := c.Data().(*callState)
		mem, trap := cs.memory(c, b.Name)
		if trap != nil {
			return nil, trap
		}
		text, ok := guestBytes(mem, args[0].I32(), args[1].I32())
		if !ok {
			return nil, cs.hostTrap(fmt.Sprintf("host call %s: text pointer out of bounds", b.Name))
		}
		// Copy before calling out: the slice aliases guest memory.
		e.hosts.CallText(cs.inv, b, append([]byte(nil), text...))
		return nil, nil
	}
}

func (e *Engine) jsonImport(b *hostapi.Bound) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	return func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
		cs := c.Data().(*callState)
		mem, trap := cs.memory(c, b.Name)
		if trap != nil {
			return nil, trap
		}
		req, ok := guestBytes(mem, args[0].I32(), args[1].I32())
		if !ok {
			return nil, cs.hostTrap(fmt.Sprintf("host call %s: request pointer out of bounds", b.Name))
		}
		outPtr := args[2].I32()
		if _, ok := guestBytes(mem, outPtr, 8); !ok {
			return nil, cs.hostTrap(fmt.Sprintf("host call %s: out pointer out of bounds", b.Name))
		}
		reply, status := e.hosts.CallJSON(cs.inv, b, append([]byte(nil), req...))
		ptr, trap := cs.copyIn(c, reply, b.Name)
		if trap != nil {
			return nil, trap
		}
		// alloc may have grown memory: look it up again.
		mem, trap = cs.memory(c, b.Name)
		if trap != nil {
			return nil, trap
		}
		out, ok := guestBytes(mem, outPtr, 8)
		if !ok {
			return nil, cs.hostTrap(fmt.Sprintf("host call %s: out pointer out of bounds", b.Name))
		}
		binary.LittleEndian.PutUint32(out[0:4], uint32(ptr))
		binary.LittleEndian.PutUint32(out[4:8], uint32(len(reply)))
		return []wasmtime.Val{wasmtime.ValI32(status)}, nil
	}
}

// memory returns the caller's exported memory as a byte slice that stays
// valid until the guest runs again.
func (cs *callState) memory(c *wasmtime.Caller, what string) ([]byte, *wasmtime.Trap) {
	ex := c.GetExport("memory")
	if ex == nil || ex.Memory() == nil {
		return nil, cs.hostTrap(fmt.Sprintf("host call %s: module does not export memory", what))
	}
	return ex.Memory().UnsafeData(c), nil
}

// copyIn allocates len(b) bytes in the guest through its alloc export and
// copies b there, for host-call replies.
func (cs *callState) copyIn(c *wasmtime.Caller, b []byte, what string) (int32, *wasmtime.Trap) {
	ex := c.GetExport("alloc")
	if ex == nil || ex.Func() == nil {
		return 0, cs.hostTrap(fmt.Sprintf("host call %s: module does not export alloc", what))
	}
	res, err := ex.Func().Call(c, int32(len(b)))
	if err != nil {
		if t, ok := err.(*wasmtime.Trap); ok {
			// Re-raise the guest's own trap (e.g. the epoch interrupt) so it
			// is classified as what it is.
			return 0, t
		}
		return 0, cs.hostTrap(fmt.Sprintf("host call %s: alloc failed", what))
	}
	ptr, ok := res.(int32)
	if !ok {
		return 0, cs.hostTrap(fmt.Sprintf("host call %s: alloc returned no i32", what))
	}
	mem, trap := cs.memory(c, what)
	if trap != nil {
		return 0, trap
	}
	dst, ok := guestBytes(mem, ptr, int32(len(b)))
	if !ok {
		return 0, cs.hostTrap(fmt.Sprintf("host call %s: alloc returned an out-of-bounds pointer", what))
	}
	copy(dst, b)
	return ptr, nil
}

// guestBytes returns mem[ptr:ptr+n] when that range lies inside memory.
// Pointers and lengths are unsigned 32-bit values on the wire.
func guestBytes(mem []byte, ptr, n int32) ([]byte, bool) {
	p, l := uint64(uint32(ptr)), uint64(uint32(n))
	if p+l > uint64(len(mem)) {
		return nil, false
	}
	return mem[p : p+l : p+l], true
}
