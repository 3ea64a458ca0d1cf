//go:build !wasip1

package guest

import (
	"encoding/binary"
	"os"
	"sync"
)

// TestHost stands in for the runner when the SDK is compiled natively (any
// GOOS other than wasip1), so handlers can be unit-tested with `go test`.
// It receives the import name ("http.fetch", "storage.get", …, "log_info",
// "log_warn", "log_error") and the request bytes (JSON, or the UTF-8
// message for logs), and returns the reply JSON and the import's return
// value: 0 for success, 1 with `{"error":{"code","message"}}` for a host
// error. The reply of a log call is ignored.
type TestHost func(name string, req []byte) (reply []byte, status uint32)

var (
	testHostMu sync.RWMutex
	testHost   TestHost
)

// SetTestHost installs h as the host for native builds and returns a
// function that restores the previous one. With no host installed, log
// calls go to stderr and every other import fails with code
// capability_denied. SetTestHost does not exist in wasip1 builds.
func SetTestHost(h TestHost) (restore func()) {
	testHostMu.Lock()
	prev := testHost
	testHost = h
	testHostMu.Unlock()
	return func() {
		testHostMu.Lock()
		testHost = prev
		testHostMu.Unlock()
	}
}

func currentTestHost() TestHost {
	testHostMu.RLock()
	defer testHostMu.RUnlock()
	return testHost
}

var noHostReply = []byte(`{"error":{"code":"capability_denied","message":"no test host installed (guest.SetTestHost)"}}`)

// callImport mimics the runner: it hands the request to the test host and
// writes the reply the way the real host does, through alloc and the out
// area, so the SDK's reply bookkeeping runs natively too.
func callImport(name string, req, out []byte) uint32 {
	h := currentTestHost()
	reply, status := noHostReply, uint32(1)
	if h != nil {
		reply, status = h(name, append([]byte(nil), req...))
	}
	if reply != nil {
		ptr := mem.alloc(int32(len(reply)))
		buf, _ := mem.slice(ptr, uint32(len(reply)))
		copy(buf, reply)
		binary.LittleEndian.PutUint32(out[0:4], ptr)
		binary.LittleEndian.PutUint32(out[4:8], uint32(len(reply)))
	}
	return status
}

func callLog(name, msg string) {
	if msg == "" {
		return
	}
	if h := currentTestHost(); h != nil {
		h(name, []byte(msg))
		return
	}
	os.Stderr.WriteString(name + ": " + msg + "\n")
}
