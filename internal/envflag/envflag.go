// Package envflag is the one rule for the daemons' environment variables:
// every flag --foo-bar has the variable EXTEDGE_FOO_BAR. A few older names
// that SPEC pins (REGISTRY_BASE_URL, EXT_CACHE_ROOT, …) are accepted as
// aliases after it. The command line wins over the environment, the
// environment over the default, and a bad value in a variable is an error
// naming the variable — never silently the default.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix starts every variable name.
const Prefix = "EXTEDGE_"

// Name is the variable for the flag named flagName ("cache-dir" →
// "EXTEDGE_CACHE_DIR").
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its variable: Name(flag) first, then aliases[flag] in order. It
// appends "[env NAME]" (and the aliases) to each flag's usage first, so
// -help lists every variable. Flags listed in skip have no variable (for
// example a flag whose variable would hold a secret in a different form);
// their usage is left alone.
func Parse(fs *flag.FlagSet, args []string, aliases map[string][]string, skip ...string) error {
	skipped := make(map[string]bool, len(skip))
	for _, s := range skip {
		skipped[s] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !skipped[f.Name] {
			f.Usage += " [env " + strings.Join(Names(f.Name, aliases), ", ") + "]"
		}
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] || skipped[f.Name] {
			return
		}
		for _, name := range Names(f.Name, aliases) {
			v, ok := os.LookupEnv(name)
			if !ok || v == "" {
				continue
			}
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q (for --%s): %v", name, v, f.Name, e)
			}
			return
		}
	})
	return err
}

// Names lists the variables read for flagName, in the order Parse tries
// them.
func Names(flagName string, aliases map[string][]string) []string {
	return append([]string{Name(flagName)}, aliases[flagName]...)
}
