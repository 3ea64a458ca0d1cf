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
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/extedge/extedge/internal/buildinfo"
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
	case "version", "--version", "-version":
		if err := printVersion(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "runnerd: %v\n", err)
			os.Exit(2)
		}
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
  runnerd version [--json] print the version, commit, Go and wasmtime-go versions (also --version)

The runner executes extension handlers (Guest ABI v1) in wasmtime with a
fresh instance per call, verifies every bundle's hash and signature before
it first runs, and exposes capability-gated host APIs (log, http.fetch,
storage.kv, secrets.get, metrics.emit).
`

// wasmtimeModule is the wasmtime-go module runnerd links (its engine is
// part of what a compiled-module cache is valid for).
const wasmtimeModule = "github.com/bytecodealliance/wasmtime-go/v39"

// printVersion is `runnerd version [--json]`.
func printVersion(args []string, stdout io.Writer) error {
	info := buildinfo.Read()
	wasmtime := buildinfo.DepVersion(wasmtimeModule)
	switch {
	case len(args) == 0:
		_, err := fmt.Fprintf(stdout, "%s; wasmtime-go %s\n", info.Line("runnerd"), wasmtime)
		return err
	case len(args) == 1 && (args[0] == "--json" || args[0] == "-json"):
		return json.NewEncoder(stdout).Encode(struct {
			buildinfo.Info
			Wasmtime string `json:"wasmtime_go"`
		}{info, wasmtime})
	}
	return fmt.Errorf("usage: runnerd version [--json]")
}
