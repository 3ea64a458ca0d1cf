package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/extedge/extedge/internal/envflag"
)

// envAliases are the older variable names SPEC pins, read after the
// EXTEDGE_<FLAG> name (internal/envflag). Every other variable follows the
// rule: REGISTRY_LISTEN and LOG_LEVEL, read by earlier versions, are now
// EXTEDGE_LISTEN and EXTEDGE_LOG_LEVEL.
var envAliases = map[string][]string{
	"trust-bundle": {"SIGNING_TRUST_BUNDLE"}, // SPEC §3
}

// parseFlags parses a subcommand's arguments with the one environment rule.
// Flags in noEnv have no variable: per-invocation arguments (--role,
// --json…) and switches SPEC wants explicit (--allow-unsigned).
func parseFlags(fs *flag.FlagSet, args []string, noEnv ...string) error {
	return envflag.Parse(fs, args, envAliases, noEnv...)
}

// databaseFlags are --database-url and --database-url-file, taken by every
// subcommand that opens the database.
type databaseFlags struct {
	url  string
	file string
}

func addDatabaseFlags(fs *flag.FlagSet) *databaseFlags {
	d := &databaseFlags{}
	fs.StringVar(&d.url, "database-url", "", "Postgres URL (postgres://…), or embedded:DIR for a private PostgreSQL in DIR")
	fs.StringVar(&d.file, "database-url-file", "", "file holding the --database-url value (trimmed), e.g. a credential with the password; exclusive with --database-url")
	return d
}

// resolve returns the database URL: --database-url, or the trimmed content
// of --database-url-file. It reads the file now, so a missing or empty one
// fails at start.
func (d *databaseFlags) resolve() (string, error) {
	switch {
	case d.url != "" && d.file != "":
		return "", fmt.Errorf("--database-url (%s) and --database-url-file (%s) are exclusive; set one",
			envflag.Name("database-url"), envflag.Name("database-url-file"))
	case d.file != "":
		b, err := os.ReadFile(d.file)
		if err != nil {
			return "", fmt.Errorf("--database-url-file: %v", err)
		}
		url := strings.TrimSpace(string(b))
		if url == "" {
			return "", fmt.Errorf("--database-url-file %s is empty", d.file)
		}
		return url, nil
	case d.url != "":
		return d.url, nil
	}
	return "", errors.New("no database: set --database-url or --database-url-file (or " +
		envflag.Name("database-url") + " or " + envflag.Name("database-url-file") + "; postgres://… or embedded:DIR)")
}
