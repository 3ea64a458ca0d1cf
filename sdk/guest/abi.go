package guest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync"
)

// Return codes of the handler export. Any non-zero value makes the runner
// report `handler_error` carrying the code (SPEC §5.1, §6.2).
const (
	// ReturnOK: the response was written.
	ReturnOK int32 = 0
	// ReturnPanic: the handler panicked. The panic value and a stack
	// excerpt are logged with log_error first.
	ReturnPanic int32 = 1
	// ReturnBadRequest: the request JSON could not be decoded.
	ReturnBadRequest int32 = 2
	// ReturnBadMemory: req_ptr/req_len or out_ptr do not name guest memory.
	ReturnBadMemory int32 = 3
)

// arena keeps every buffer handed to the host reachable until the host
// frees it. Go's collector does not move heap objects, so an address stays
// valid exactly as long as the slice is referenced from here.
type arena struct {
	mu   sync.Mutex
	bufs map[uint32][]byte
}

var mem = &arena{bufs: map[uint32][]byte{}}

// alloc returns the address of a new zeroed buffer of size bytes, or 0 for a
// negative size. A zero size still yields a distinct, valid address.
func (a *arena) alloc(size int32) uint32 {
	if size < 0 {
		return 0
	}
	return a.keep(make([]byte, size, max(size, 1)))
}

// keep registers buf (whose capacity must be at least 1) and returns its
// address.
func (a *arena) keep(buf []byte) uint32 {
	ptr := addressOf(buf[:cap(buf)])
	a.mu.Lock()
	a.bufs[ptr] = buf
	a.mu.Unlock()
	return ptr
}

// free forgets the buffer at ptr; unknown pointers are ignored, as a
// double dealloc must not crash the guest.
func (a *arena) free(ptr uint32) {
	a.mu.Lock()
	delete(a.bufs, ptr)
	a.mu.Unlock()
}

// live reports how many buffers are held for the host.
func (a *arena) live() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.bufs)
}

// slice returns n bytes at ptr, which must lie inside a buffer from alloc
// (the ABI hands the host no other memory). A zero-length range at address
// 0 is the empty slice.
func (a *arena) slice(ptr, n uint32) ([]byte, bool) {
	a.mu.Lock()
	b, ok := a.bufs[ptr]
	if !ok {
		for base, buf := range a.bufs {
			if ptr > base && uint64(ptr)+uint64(n) <= uint64(base)+uint64(len(buf)) {
				b, ok = buf[ptr-base:], true
				break
			}
		}
	}
	a.mu.Unlock()
	if ok {
		if uint64(n) > uint64(len(b)) {
			return nil, false
		}
		return b[:n:n], true
	}
	return nil, ptr == 0 && n == 0
}

// take returns the n bytes at ptr, which must be the start of a buffer
// from alloc, and releases that buffer: the caller now owns the bytes.
func (a *arena) take(ptr, n uint32) ([]byte, bool) {
	a.mu.Lock()
	b, ok := a.bufs[ptr]
	if ok {
		delete(a.bufs, ptr)
	}
	a.mu.Unlock()
	if ok {
		if uint64(n) > uint64(len(b)) {
			return nil, false
		}
		return b[:n:n], true
	}
	return nil, false
}

// abiAlloc implements the alloc export.
func abiAlloc(size int32) int32 { return int32(mem.alloc(size)) }

// abiDealloc implements the dealloc export. The size is not needed: buffers
// are keyed by address.
func abiDealloc(ptr, _ int32) { mem.free(uint32(ptr)) }

// abiHandler implements the handler export: it decodes the request at
// reqPtr, dispatches it, keeps the encoded response alive for the host and
// writes (resp_ptr, resp_len) little-endian at outPtr.
func abiHandler(reqPtr, reqLen, outPtr int32) int32 {
	raw, ok := mem.slice(uint32(reqPtr), uint32(reqLen))
	if !ok {
		return ReturnBadMemory
	}
	out, ok := mem.slice(uint32(outPtr), 8)
	if !ok {
		return ReturnBadMemory
	}
	body, code := serveJSON(raw)
	if code != ReturnOK {
		return code
	}
	ptr := mem.keep(body)
	binary.LittleEndian.PutUint32(out[0:4], ptr)
	binary.LittleEndian.PutUint32(out[4:8], uint32(len(body)))
	return ReturnOK
}

// serveJSON decodes one request, runs its handler and encodes the response.
func serveJSON(raw []byte) (body []byte, code int32) {
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		Log.Error("decoding request: " + err.Error())
		return nil, ReturnBadRequest
	}
	resp, panicked := callHandler(&req)
	if panicked {
		return nil, ReturnPanic
	}
	body, err := json.Marshal(normalize(resp))
	if err != nil { // unreachable for Response's field types; kept for safety
		body, _ = json.Marshal(normalize(Error(500, CodeInternal, "encoding response")))
	}
	return body, ReturnOK
}

// maxPanicLog bounds the stack excerpt logged for a panic, well under the
// runner's per-invocation log cap.
const maxPanicLog = 4096

func callHandler(req *Request) (resp Response, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			msg := fmt.Sprintf("handler panic: %v\n%s", v, debug.Stack())
			if len(msg) > maxPanicLog {
				msg = msg[:maxPanicLog]
			}
			Log.Error(msg)
			panicked = true
		}
	}()
	return defaultRouter.dispatch(req), false
}
