//go:build !wasip1

package guest

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Handlers the ABI tests dispatch to; registered once, in init, as real
// guests must.
func init() {
	Handle("abi/echo", func(r *Request) Response {
		return JSON(201, map[string]any{"path": r.HTTP.Path, "id": r.Param("id"), "tenant": r.Context.TenantID})
	})
	Handle("abi/panic", func(r *Request) Response { panic("boom") })
	Handle("abi/zero", func(r *Request) Response { return Response{Body: []byte("x")} })
}

// put copies b into a fresh guest buffer, as the host does.
func put(t *testing.T, b []byte) int32 {
	t.Helper()
	ptr := abiAlloc(int32(len(b)))
	buf, ok := mem.slice(uint32(ptr), uint32(len(b)))
	if !ok {
		t.Fatalf("alloc(%d) returned unusable pointer %#x", len(b), ptr)
	}
	copy(buf, b)
	return ptr
}

// invoke runs the §5.1 call sequence against the exported Go functions and
// returns the handler's return code, the response bytes, and the three
// buffers the host must dealloc.
func invoke(t *testing.T, reqJSON string) (code int32, resp []byte, bufs [3]int32) {
	t.Helper()
	reqPtr := put(t, []byte(reqJSON))
	outPtr := abiAlloc(8)
	code = abiHandler(reqPtr, int32(len(reqJSON)), outPtr)
	bufs = [3]int32{reqPtr, outPtr, 0}
	if code != ReturnOK {
		return code, nil, bufs
	}
	out, _ := mem.slice(uint32(outPtr), 8)
	rp, rl := binary.LittleEndian.Uint32(out[0:4]), binary.LittleEndian.Uint32(out[4:8])
	body, ok := mem.slice(rp, rl)
	if !ok {
		t.Fatalf("response (%#x, %d) is not live guest memory", rp, rl)
	}
	bufs[2] = int32(rp)
	return code, append([]byte(nil), body...), bufs
}

func TestABIHandlerWritesResponse(t *testing.T) {
	before := mem.live()
	code, body, bufs := invoke(t, `{"context":{"tenant_id":"t1"},"http":{"method":"GET","path":"/x/9"},
		"endpoint":{"handler":"abi/echo","params":{"id":"9"}}}`)
	if code != ReturnOK {
		t.Fatalf("handler returned %d", code)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, body)
	}
	if resp.Status != 201 || resp.Headers["content-type"] != "application/json" {
		t.Fatalf("response %+v", resp)
	}
	if got := string(resp.Body); got != `{"id":"9","path":"/x/9","tenant":"t1"}` {
		t.Fatalf("body %s", got)
	}
	if !strings.Contains(string(body), `"body_b64":"`) {
		t.Fatalf("body is not sent as body_b64: %s", body)
	}
	// All three buffers stay reachable until the host frees them.
	if got := mem.live() - before; got != 3 {
		t.Fatalf("%d buffers held after handler, want 3 (request, out, response)", got)
	}
	for _, p := range bufs {
		abiDealloc(p, 0)
	}
	if mem.live() != before {
		t.Fatalf("buffers leaked after dealloc: %d, want %d", mem.live(), before)
	}
}

func TestABIZeroStatusIsSentAs200(t *testing.T) {
	code, body, bufs := invoke(t, `{"endpoint":{"handler":"abi/zero"}}`)
	defer func() {
		for _, p := range bufs {
			abiDealloc(p, 0)
		}
	}()
	if code != ReturnOK || !strings.Contains(string(body), `"status":200`) {
		t.Fatalf("code %d body %s", code, body)
	}
}

func TestABIReturnCodes(t *testing.T) {
	var logs []string
	defer SetTestHost(func(name string, req []byte) ([]byte, uint32) {
		logs = append(logs, name+": "+string(req))
		return nil, 0
	})()
	tests := []struct {
		name    string
		req     string
		want    int32
		wantLog string
	}{
		{"handler panic returns 1 and logs the panic", `{"endpoint":{"handler":"abi/panic"}}`, ReturnPanic, "log_error: handler panic: boom"},
		{"malformed request JSON returns 2", `{"endpoint":`, ReturnBadRequest, "log_error: decoding request"},
		{"request that is not an object returns 2", `[1,2]`, ReturnBadRequest, "log_error: decoding request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs = nil
			code, _, bufs := invoke(t, tt.req)
			for _, p := range bufs {
				abiDealloc(p, 0)
			}
			if code != tt.want {
				t.Fatalf("returned %d, want %d", code, tt.want)
			}
			if len(logs) != 1 || !strings.HasPrefix(logs[0], tt.wantLog) {
				t.Fatalf("logs %q, want one starting %q", logs, tt.wantLog)
			}
		})
	}
}

func TestABIUnknownPointersReturn3(t *testing.T) {
	req := `{"endpoint":{"handler":"abi/echo"}}`
	reqPtr := put(t, []byte(req))
	outPtr := abiAlloc(8)
	defer abiDealloc(reqPtr, 0)
	defer abiDealloc(outPtr, 0)
	small := abiAlloc(4)
	defer abiDealloc(small, 0)
	tests := []struct {
		name                   string
		reqPtr, reqLen, outPtr int32
	}{
		{"request pointer never allocated", 0x7fff0000, int32(len(req)), outPtr},
		{"request length past its buffer", reqPtr, int32(len(req)) + 1, outPtr},
		{"out pointer never allocated", reqPtr, int32(len(req)), 0x7fff0000},
		{"out area smaller than 8 bytes", reqPtr, int32(len(req)), small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := abiHandler(tt.reqPtr, tt.reqLen, tt.outPtr); got != ReturnBadMemory {
				t.Fatalf("returned %d, want %d", got, ReturnBadMemory)
			}
		})
	}
}

func TestABIAlloc(t *testing.T) {
	before := mem.live()
	t.Run("negative size returns 0", func(t *testing.T) {
		if p := abiAlloc(-1); p != 0 {
			t.Fatalf("alloc(-1) = %#x", p)
		}
	})
	t.Run("zero size returns a distinct non-zero pointer", func(t *testing.T) {
		a, b := abiAlloc(0), abiAlloc(0)
		if a == 0 || b == 0 || a == b {
			t.Fatalf("alloc(0) = %#x, %#x", a, b)
		}
		abiDealloc(a, 0)
		abiDealloc(b, 0)
	})
	t.Run("buffers are zeroed and disjoint", func(t *testing.T) {
		a, b := abiAlloc(16), abiAlloc(16)
		ba, _ := mem.slice(uint32(a), 16)
		bb, _ := mem.slice(uint32(b), 16)
		for i := range ba {
			ba[i] = 0xff
		}
		for _, c := range bb {
			if c != 0 {
				t.Fatal("writing one buffer changed another")
			}
		}
		if inner, ok := mem.slice(uint32(a)+4, 8); !ok || inner[0] != 0xff {
			t.Fatal("interior pointer of a live buffer is not addressable")
		}
		abiDealloc(a, 16)
		abiDealloc(b, 16)
	})
	t.Run("dealloc of unknown or freed pointer is harmless", func(t *testing.T) {
		p := abiAlloc(8)
		abiDealloc(p, 8)
		abiDealloc(p, 8)
		abiDealloc(12345, 1)
	})
	t.Run("freed buffer is no longer addressable", func(t *testing.T) {
		p := abiAlloc(8)
		abiDealloc(p, 8)
		if _, ok := mem.slice(uint32(p), 8); ok {
			t.Fatal("freed buffer still addressable")
		}
	})
	if mem.live() != before {
		t.Fatalf("live buffers %d, want %d", mem.live(), before)
	}
}

func TestABIConcurrentAllocIsSafe(t *testing.T) {
	before := mem.live()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := abiAlloc(int32(i))
				abiDealloc(p, int32(i))
			}
		}()
	}
	wg.Wait()
	if mem.live() != before {
		t.Fatalf("live buffers %d, want %d", mem.live(), before)
	}
}
