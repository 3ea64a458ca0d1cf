// Command registryd is extedge's registry daemon (SPEC §7): it owns the
// Postgres schema, publishes bundles into the blob store, and serves the
// admin API (extctl) and the service API (gateways, runners).
//
//	registryd serve   [--listen 127.0.0.1:7070] --database-url URL|--database-url-file F --bundle-store URL [flags]
//	registryd migrate [--database-url URL|--database-url-file F]
//	registryd token create --role platform_admin|tenant_admin|service [--tenant T] [--name N] [--expires D] [--json]
//	registryd token list [--json]
//	registryd token revoke ID
//	registryd secrets-key generate
//	registryd secrets-key rotate --old-key-file F --new-key-file G [--batch-size N]
//	registryd version [--json]   (also --version)
//
// Every flag --foo-bar may be given as the variable EXTEDGE_FOO_BAR
// (internal/envflag; --trust-bundle also as SIGNING_TRUST_BUNDLE); each
// command's -h lists them. --database-url is a postgres:// URL, or
// embedded:DIR to run a private PostgreSQL from the system's binaries with
// its data in DIR (single-node and first-run mode; see internal/pgembed).
// The application role must not be a superuser or BYPASSRLS, or row-level
// security does not apply; embedded mode creates such a role ("extedge").
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/extedge/extedge/internal/buildinfo"
	"github.com/extedge/extedge/internal/secretbox"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: registryd <command> [flags]

commands:
  serve                 run the registry API
  migrate               apply database migrations and exit
  token create          create an API token (printed once, stored hashed)
  token list            list tokens (ids, roles, tenants; never values)
  token revoke ID       revoke a token (replicas stop accepting it within 10 s)
  secrets-key generate  print a new --secrets-key-file value
  secrets-key rotate    re-seal every stored secret under a new key
  version               print the version, commit and Go version (--json)

Run "registryd <command> -h" for a command's flags. Every flag --foo-bar
can also be set as EXTEDGE_FOO_BAR; -h names each variable.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx := context.Background()
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "migrate":
		err = cmdMigrate(ctx, args[1:], stdout, stderr)
	case "token":
		sub := ""
		if len(args) > 1 {
			sub = args[1]
		}
		switch sub {
		case "create":
			err = cmdTokenCreate(ctx, args[2:], stdout, stderr)
		case "list":
			err = cmdTokenList(ctx, args[2:], stdout, stderr)
		case "revoke":
			err = cmdTokenRevoke(ctx, args[2:], stdout, stderr)
		default:
			fmt.Fprint(stderr, "usage: registryd token create --role ROLE [--tenant T] [--json] | token list [--json] | token revoke ID\n")
			return 2
		}
	case "secrets-key":
		switch {
		case len(args) > 1 && args[1] == "generate":
			fmt.Fprintln(stdout, secretbox.GenerateKey())
		case len(args) > 1 && args[1] == "rotate":
			err = cmdSecretsKeyRotate(ctx, args[2:], stdout, stderr)
		default:
			fmt.Fprint(stderr, "usage: registryd secrets-key generate | secrets-key rotate --old-key-file F --new-key-file G [--batch-size N]\n")
			return 2
		}
	case "version", "--version", "-version":
		err = printVersion(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "registryd: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "registryd: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// printVersion is `registryd version [--json]`.
func printVersion(args []string, stdout io.Writer) error {
	info := buildinfo.Read()
	switch {
	case len(args) == 0:
		_, err := fmt.Fprintln(stdout, info.Line("registryd"))
		return err
	case len(args) == 1 && (args[0] == "--json" || args[0] == "-json"):
		return json.NewEncoder(stdout).Encode(info)
	}
	return fmt.Errorf("usage: registryd version [--json]")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
