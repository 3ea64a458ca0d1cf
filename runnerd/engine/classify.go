package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/extedge/extedge/internal/execapi"
)

type phase int

const (
	phaseInstantiate phase = iota
	phaseInit
	phaseAlloc
	phaseHandler
)

func (p phase) String() string {
	return [...]string{"instantiating", "in _initialize", "in alloc", "in handler"}[p]
}

// Trap codes as wasmtime v39 reports them. The Go constants of
// wasmtime-go stop at OutOfFuel = 11, but the C API inserted a code before
// it, so fuel exhaustion arrives as 12 (measured).
const (
	trapInterrupt     = 10
	trapOutOfFuel     = 12
	pageSize          = 64 << 10
	oomMarker         = "out of memory"
	memoryLimitMarker = "exceeds memory limits"
)

var trapNames = map[int]string{
	0: "stack overflow", 1: "out-of-bounds memory access", 2: "misaligned atomic access",
	3: "out-of-bounds table access", 4: "indirect call to null", 5: "indirect call signature mismatch",
	6: "integer overflow", 7: "integer division by zero", 8: "invalid conversion to integer",
	9: "unreachable instruction executed", 10: "interrupted", 11: "out of fuel", 12: "out of fuel",
}

// classify turns a wasmtime failure into a §6.2 error. Messages are short
// and fixed so that no runner internals reach the gateway.
func (cs *callState) classify(err error, ph phase, store *wasmtime.Store, inst *wasmtime.Instance, lim Limits) *execapi.Error {
	var ee *execapi.Error
	if errors.As(err, &ee) {
		return ee
	}
	memFull := func() bool {
		if inst == nil {
			return false
		}
		ex := inst.GetExport(store, "memory")
		if ex == nil || ex.Memory() == nil {
			return false
		}
		// A grow that the limiter refused leaves memory close to the cap (a
		// runtime grows in chunks); a guest that then traps (an explicit
		// unreachable after memory.grow returned -1, an allocator abort) ran
		// out of memory. "Close" is within 1/16 of the cap or 2 MiB. Go
		// guests are recognised exactly by their "out of memory" on stderr.
		slack := max(2<<20, lim.MemoryBytes/16)
		return int64(ex.Memory().DataSize(store))+slack > lim.MemoryBytes
	}
	if cs.trapMsg != "" {
		// The host trapped the guest (bad pointers in a host call); wasmtime
		// reports it as an error without a trap code.
		return &execapi.Error{Code: execapi.CodeTrap, Message: fmt.Sprintf("guest trapped %s: %s", ph, cs.trapMsg)}
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		code := -1
		if c := trap.Code(); c != nil {
			code = int(*c)
		}
		switch code {
		case trapInterrupt:
			return &execapi.Error{Code: execapi.CodeTimeout, Message: fmt.Sprintf("deadline reached %s", ph)}
		case trapOutOfFuel, int(wasmtime.OutOfFuel):
			return &execapi.Error{Code: execapi.CodeFuelExhausted, Message: fmt.Sprintf("fuel exhausted %s", ph)}
		}
		if memFull() {
			return &execapi.Error{Code: execapi.CodeMemoryLimit, Message: fmt.Sprintf("guest exceeded its %d MiB memory limit %s", lim.MemoryBytes>>20, ph)}
		}
		name, ok := trapNames[code]
		if !ok {
			name = "trap"
		}
		return &execapi.Error{Code: execapi.CodeTrap, Message: fmt.Sprintf("guest trapped %s: %s", ph, name)}
	}
	var we *wasmtime.Error
	if errors.As(err, &we) {
		if status, ok := we.ExitStatus(); ok {
			if memFull() {
				return &execapi.Error{Code: execapi.CodeMemoryLimit, Message: fmt.Sprintf("guest exceeded its %d MiB memory limit %s", lim.MemoryBytes>>20, ph)}
			}
			return &execapi.Error{Code: execapi.CodeTrap, Message: fmt.Sprintf("guest exited with status %d %s", status, ph)}
		}
		msg := we.Error()
		switch {
		case strings.Contains(msg, memoryLimitMarker):
			return &execapi.Error{Code: execapi.CodeMemoryLimit, Message: fmt.Sprintf("module needs more than its %d MiB memory limit", lim.MemoryBytes>>20)}
		case ph == phaseInstantiate:
			// Unknown or mistyped imports, start function problems.
			return badHandler("instantiating module: %s", firstLine(trimBacktrace(msg)))
		}
		return &execapi.Error{Code: execapi.CodeTrap, Message: fmt.Sprintf("guest failed %s", ph)}
	}
	return &execapi.Error{Code: execapi.CodeInternal, Message: "engine error"}
}

// trimBacktrace drops the Rust backtrace wasmtime appends when
// RUST_BACKTRACE is set.
func trimBacktrace(s string) string {
	if i := strings.Index(s, "\n\nStack backtrace:"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// parseResponse applies §5.1 to the guest's output: a JSON object is a
// response whose status (default 200) must be 100–599, whose header values
// must be strings and whose body_b64 must be base64 or null; anything that
// is not a JSON object is an opaque 200 body without headers.
func parseResponse(raw []byte) (*execapi.Response, *execapi.Error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	var obj map[string]json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		return &execapi.Response{Status: 200, Headers: map[string]string{}, Body: append([]byte(nil), raw...)}, nil
	}
	resp := &execapi.Response{Status: 200, Headers: map[string]string{}}
	if s, ok := obj["status"]; ok && string(s) != "null" {
		var n json.Number
		if err := json.Unmarshal(s, &n); err != nil {
			return nil, badHandler("response status is not a number")
		}
		v, err := n.Int64()
		if err != nil || v < 100 || v > 599 {
			return nil, badHandler("response status %s is not an integer in 100-599", n)
		}
		resp.Status = int(v)
	}
	if h, ok := obj["headers"]; ok && string(h) != "null" {
		var hm map[string]json.RawMessage
		if err := json.Unmarshal(h, &hm); err != nil {
			return nil, badHandler("response headers is not an object")
		}
		for k, v := range hm {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, badHandler("response header %q is not a string", k)
			}
			if k == "" || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(s, "\r\n\x00") {
				return nil, badHandler("response header %q is not a valid header", k)
			}
			resp.Headers[strings.ToLower(k)] = s
		}
	}
	if b, ok := obj["body_b64"]; ok && string(b) != "null" {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, badHandler("response body_b64 is not a string")
		}
		body, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, badHandler("response body_b64 is not valid base64")
		}
		resp.Body = body
	}
	return resp, nil
}
