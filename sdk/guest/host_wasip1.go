//go:build wasip1

package guest

import (
	"runtime"
	"unsafe"
)

//go:wasmimport alga http.fetch
func hostHTTPFetch(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga storage.get
func hostStorageGet(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga storage.put
func hostStoragePut(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga storage.delete
func hostStorageDelete(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga storage.list
func hostStorageList(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga secrets.get
func hostSecretsGet(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga metrics.emit
func hostMetricsEmit(reqPtr, reqLen, outPtr uint32) uint32

//go:wasmimport alga log_info
func hostLogInfo(ptr, n uint32)

//go:wasmimport alga log_warn
func hostLogWarn(ptr, n uint32)

//go:wasmimport alga log_error
func hostLogError(ptr, n uint32)

var imports = map[string]func(reqPtr, reqLen, outPtr uint32) uint32{
	importHTTPFetch:     hostHTTPFetch,
	importStorageGet:    hostStorageGet,
	importStoragePut:    hostStoragePut,
	importStorageDelete: hostStorageDelete,
	importStorageList:   hostStorageList,
	importSecretsGet:    hostSecretsGet,
	importMetricsEmit:   hostMetricsEmit,
}

// callImport invokes a JSON host import. req and out are heap slices; the
// KeepAlive calls hold them until the host has returned.
func callImport(name string, req, out []byte) uint32 {
	var reqPtr uint32
	if len(req) > 0 {
		reqPtr = addressOf(req)
	}
	status := imports[name](reqPtr, uint32(len(req)), addressOf(out))
	runtime.KeepAlive(req)
	runtime.KeepAlive(out)
	return status
}

// callLog invokes one of the log imports.
func callLog(name, msg string) {
	if msg == "" {
		return
	}
	ptr := uint32(uintptr(unsafe.Pointer(unsafe.StringData(msg))))
	switch name {
	case importLogWarn:
		hostLogWarn(ptr, uint32(len(msg)))
	case importLogError:
		hostLogError(ptr, uint32(len(msg)))
	default:
		hostLogInfo(ptr, uint32(len(msg)))
	}
	runtime.KeepAlive(msg)
}
