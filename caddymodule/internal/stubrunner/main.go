// Command stubrunner serves internal/testenv/stubrunner — the test double
// of runnerd's wire contract (SPEC §6.2) — as a process, for the gateway's
// integration tests and benchmarks where a real runner would measure wasm
// instead of the gateway: POST /v1/execute answers a fixed guest reply,
// GET /readyz and /healthz answer 200. Any other path answers the same
// fixed body directly, so Caddy's reverse_proxy can be pointed at the same
// process as a baseline.
//
//	stubrunner --listen unix:///tmp/r.sock --token T [--body-size N] [--delay D] [--no-decode]
package main

import (
	"bytes"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv/stubrunner"
)

func main() {
	listen := flag.String("listen", "", "unix:///abs/path.sock or tcp://host:port")
	token := flag.String("token", "", "runner bearer token")
	bodySize := flag.Int("body-size", 64, "guest response body size in bytes")
	delay := flag.Duration("delay", 0, "sleep before answering an execute call")
	noDecode := flag.Bool("no-decode", false, "drain the envelope without decoding it (benchmarks: charge the gateway, not the stub, for the comparison)")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *bodySize)
	bodyLen := strconv.Itoa(len(body))
	r := stubrunner.New(*token, execapi.Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: body})
	r.Delay, r.NoDecode = *delay, *noDecode
	r.Other = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Content-Length"] = []string{bodyLen}
		w.Write(body)
	})

	var ln net.Listener
	var err error
	switch {
	case strings.HasPrefix(*listen, "unix://"):
		path := strings.TrimPrefix(*listen, "unix://")
		_ = os.Remove(path)
		ln, err = net.Listen("unix", path)
	case strings.HasPrefix(*listen, "tcp://"):
		ln, err = net.Listen("tcp", strings.TrimPrefix(*listen, "tcp://"))
	default:
		log.Fatalf("stubrunner: --listen must be unix:// or tcp://")
	}
	if err != nil {
		log.Fatalf("stubrunner: %v", err)
	}
	log.Fatal(http.Serve(ln, r))
}
