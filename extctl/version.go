package main

import (
	"fmt"

	"github.com/extedge/extedge/internal/buildinfo"
)

// versionCmd is `extctl version` (and `extctl --version`).
func versionCmd(fs *flagSet) runFunc {
	asJSON := fs.jsonFlag()
	return func(c *cli, args []string) error {
		if len(args) > 0 {
			return usageError{"version takes no arguments"}
		}
		info := buildinfo.Read()
		if *asJSON {
			return c.printJSON(info)
		}
		_, err := fmt.Fprintln(c.stdout, info.Line("extctl"))
		return err
	}
}
