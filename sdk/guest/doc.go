// Package guest is the Go SDK for extedge handlers: WebAssembly modules that
// implement Guest ABI v1 (SPEC §5) and run inside runnerd.
//
// Build a handler module with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o dist/main.wasm .
//
// Importing this package exports the ABI functions (alloc, dealloc, handler);
// the module's own code only registers handlers. With -buildmode=c-shared the
// host calls _initialize, which runs package init functions but never main,
// so registration must happen in an init function:
//
//	func init() {
//		guest.Handle("dist/handlers/list", list)
//		guest.Route("GET", "/agreements/:id", get)
//	}
//
//	func main() {}
//
// Host capabilities are reached through [Fetch], [KV], [Secret], [Log] and
// [Metric]; a failed host call is a [*HostError] whose Code is one of the
// SPEC error codes (see [IsCode]).
//
// The package depends on the standard library only. Outside wasip1 the host
// imports are served by a replaceable in-process host ([SetTestHost]) so
// handlers can be unit-tested with plain `go test`.
package guest
