// Command demo runs the whole extedge stack on this machine with the sample
// extension (README line 1: `make demo`). It keeps its state in
// ./demo-data, so a second run reuses the database, keys and caches.
// Ctrl-C stops everything cleanly.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/extedge/extedge/internal/devstack"
)

func main() {
	var opts devstack.Options
	flag.StringVar(&opts.DataDir, "data", "", "data directory (default ./demo-data in the checkout)")
	flag.IntVar(&opts.GatewayPort, "port", 0, "gateway port (default 8080)")
	flag.IntVar(&opts.Runners, "runners", 2, "number of runnerd processes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	st, err := devstack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
	tok, _ := st.SessionToken(st.Tenant)
	fmt.Printf(`
extedge demo is up (%.1fs).

  PSA host page (tenant demo):        %[2]s/
  same page, tenant without install:  %[2]s/?tenant=other
  registry API:                       %[3]s
  Caddy admin / extedge status:       %[4]s/extedge/status
  logs:                               %[5]s/logs/

Try the API as the demo tenant:
  TOKEN=%[6]s
  curl -s -H "Authorization: Bearer $TOKEN" %[2]s/api/ext/%[7]s/agreements
  curl -s -X POST -H "Authorization: Bearer $TOKEN" %[2]s/api/ext/%[7]s/agreements/sync
  curl -s -H "Authorization: Bearer $TOKEN" '%[2]s/api/ext/%[7]s/agreements?page=2&page_size=5'
  curl -sI %[2]s/ext-ui/%[7]s/%[8]s/index.html

Press Ctrl-C to stop.
`, time.Since(start).Seconds(), st.GatewayURL, st.RegistryURL, st.AdminURL, st.DataDir, tok, st.ExtensionID, st.ContentHash)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "\ndemo: stopping")
			st.Stop()
			return
		case <-tick.C:
			if name, err, ok := st.Exited(); ok {
				fmt.Fprintf(os.Stderr, "demo: %s exited (%v); see %s\n", name, err, st.LogPath(name))
				st.Stop()
				os.Exit(1)
			}
		}
	}
}
