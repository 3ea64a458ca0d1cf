// Command runnerd is extedge's WebAssembly runner daemon (SPEC §6): it
// executes extension handlers in wasmtime with hard limits behind a small
// HTTP API on Unix sockets or TCP. Run one runnerd per core; the gateway
// spreads calls across them.
//
//	runnerd serve --listen unix:///run/extedge/runner-0.sock --trust-bundle /etc/extedge/trust.pem …
//
// `runnerd serve --help` lists every flag with its environment variable.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	switch os.Args[1] {
	case "serve":
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "runnerd: %v\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "runnerd: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

const usage = `runnerd — the extedge WebAssembly runner

Usage:
  runnerd serve [flags]    serve the runner API (see "runnerd serve --help")

The runner executes extension handlers (Guest ABI v1) in wasmtime with a
fresh instance per call, verifies every bundle's hash and signature before
it first runs, and exposes capability-gated host APIs (log, http.fetch,
storage.kv, secrets.get, metrics.emit).
`
