package caddymodule

import (
	"fmt"
	"strings"

	"github.com/extedge/extedge/caddymodule/runnerpool"
)

// checkRunnerAddress checks one `runners` address. A bare absolute path
// is the likeliest slip (runnerd's socket path pasted without a scheme),
// so its error spells out the form that works.
func checkRunnerAddress(a string) error {
	if strings.HasPrefix(a, "/") {
		return fmt.Errorf("runner address %q is a bare path: write unix/%s for a Unix socket", a, a)
	}
	if _, _, err := runnerpool.ParseAddress(a); err != nil {
		return err
	}
	return nil
}
