package main

import (
	"fmt"
	"slices"
	"strings"
)

// command is one extctl command. The table below is the only list of them:
// dispatch, `extctl help`, `CMD --help`, the golden help files and the
// shell completions are all read from it.
type command struct {
	name    string   // "pack", or "secrets set" for a subcommand
	args    string   // synopsis after the name; "[flags]" is appended
	summary string   // one line for `extctl --help` and completions
	about   string   // the paragraph `extctl help NAME` prints
	words   []string // values completion offers for the first argument
	// setup declares the command's flags on fs and returns the function
	// that runs it with the positional arguments, after parsing.
	setup func(fs *flagSet) runFunc
}

type runFunc func(c *cli, args []string) error

// commands is filled in init: help and completion read the table, so a
// package-level initialiser would be an initialisation cycle.
var commands []*command

func init() {
	commands = []*command{
		{name: "keygen", args: "--out DIR", setup: keygenCmd,
			summary: "write a publisher key pair and print its key id",
			about: "Writes DIR/publisher.key (PKCS#8 PEM, mode 0600) and DIR/publisher.pub " +
				"(PUBLIC KEY PEM, ready to paste into the registry's trust bundle, with a Publisher: header " +
				"when --publisher is given), and prints the key id. An existing private key is never " +
				"overwritten without --force."},
		{name: "new", args: "NAME", setup: newCmd,
			summary: "scaffold an extension project",
			about: "Creates a working extension project for the reverse-domain NAME (e.g. com.acme.notes): " +
				"a Go guest using the SDK, a UI, manifest.json, build.sh and a native test. " +
				"The project's go.mod points at an extedge checkout through a replace directive. " +
				"With --lang assemblyscript the guest is AssemblyScript instead: package.json (assemblyscript " +
				"pinned, @extedge/guest from the checkout's sdk/assemblyscript), asconfig.json, assembly/index.ts " +
				"and a node --test test; npm run build, npm test and npm run pack build, test and pack it."},
		{name: "dev", args: "[DIR]", setup: devCmd,
			summary: "rebuild, publish and install a project on every change, and tail its debug stream",
			about: "The author loop for the project in DIR (default the working directory): build it " +
				"(./build.sh if present, else `npm run build` with a package.json, else the Go guest in ./guest " +
				"for GOOS=wasip1), pack what the build staged (build/bundle, else DIR) as version 0.0.0-dev.N " +
				"(N one above the registry's highest, so dev builds never become the latest release), sign it " +
				"(--key, or --unsigned), publish it, install it for --tenant with every capability the manifest " +
				"declares, and tail the gateway's debug stream; then poll the project's files (hidden ones, " +
				"build/, dist/ and node_modules/ aside) every --interval and do it again after a change. " +
				"A failed build or publish is printed and waits for the next change. Ctrl-C stops it (exit 0). " +
				`With --json, stdout has one JSON line per round, {"type":"published"|"unchanged"|"failed",…}, ` +
				`and per debug entry, {"type":"debug",…}. ` +
				"The defaults are `make demo`'s stack: tenant demo, the gateway at " + DefaultGateway + ", and " +
				"from its data directory (--demo-data) the admin token, the publisher key (bound to the " +
				"publisher \"Acme Inc.\": scaffold with `extctl new NAME --publisher \"Acme Inc.\"`) and a " +
				"debug token minted from the session secret." + registryAbout},
		{name: "pack", args: "DIR -o FILE", setup: packCmd,
			summary: "validate DIR's manifest and pack it into a bundle",
			about: "Checks DIR/manifest.json against the files in DIR, then writes the canonical " +
				"bundle (tar + zstd: files sorted, mode 0644, uid/gid 0, mtime 0) to FILE and prints its " +
				"sha256: content hash. The same tree gives the same bytes on any machine. " +
				"A failed pack leaves no output file."},
		{name: "sign", args: "BUNDLE --key KEY", setup: signCmd,
			summary: "sign a bundle's content hash with a publisher key",
			about: "Signs BUNDLE's content hash with the private key and writes the detached " +
				"signature file that publish and verify read."},
		{name: "verify", args: "BUNDLE --signature SIGNATURE --trust-bundle PEM", setup: verifyCmd,
			summary: "check a bundle and its signature against a trust bundle",
			about: "Validates BUNDLE fully (bundle rules and manifest), then checks that SIGNATURE " +
				"signs its content hash with a key of the trust bundle bound to the manifest's " +
				"publisher, as the registry does at publish."},
		{name: "inspect", args: "BUNDLE", setup: inspectCmd,
			summary: "show a bundle's manifest, files, sizes and hash",
			about: "Validates BUNDLE and prints its name, version, publisher, content hash, size, " +
				"capabilities, endpoints and files. With --json it prints " +
				`{"content_hash","size","manifest","files":[{"path","size","sha256"}]}.`},
		{name: "publish", args: "BUNDLE [--signature SIGNATURE | --unsigned]", setup: publishCmd,
			summary: "upload a signed bundle to the registry",
			about: "Uploads BUNDLE and its signature to the registry, which verifies both before " +
				"storing the version. Publishing the same content again changes nothing and exits 0. " +
				"A progress bar is shown for bundles over 1 MiB when stderr is a terminal." + registryAbout},
		{name: "install", args: "--tenant T --extension NAME", setup: installCmd,
			summary: "install an extension for a tenant, or change its install",
			about: "Installs NAME for tenant T at --version (default the newest non-revoked " +
				"version), or changes the existing install. Effective capabilities are the granted ones " +
				"the version declares. Lists and config that are not given keep their current value; " +
				"given --config pairs replace the whole config." + platformAbout + registryAbout},
		{name: "upgrade", args: "--tenant T --extension NAME --version V", setup: upgradeCmd,
			summary: "move an existing install to another version",
			about: "Changes an existing install's version (it never creates one). Grants, config and " +
				"egress are kept unless given; capabilities the new version adds stay ungranted until " +
				"--grant names them." + platformAbout + registryAbout},
		{name: "enable", args: "--tenant T --extension NAME", setup: enableCmd,
			summary: "let an install serve traffic again",
			about:   "Enables tenant T's install of NAME." + registryAbout},
		{name: "disable", args: "--tenant T --extension NAME", setup: disableCmd,
			summary: "stop an install's traffic at once",
			about: "Disables tenant T's install of NAME: gateways stop routing to it within the " +
				"change feed's delay. Its settings, secrets and data are kept." + registryAbout},
		{name: "uninstall", args: "--tenant T --extension NAME", setup: uninstallCmd,
			summary: "remove an install with its secrets and stored data",
			about: "Deletes tenant T's install of NAME together with its secrets and KV data. " +
				"It asks for confirmation when stdin is a terminal; otherwise it refuses unless --yes " +
				"is given, so a script never deletes by accident." + registryAbout},
		{name: "secrets set", args: "--tenant T --extension NAME KEY=VALUE|KEY=@FILE|KEY=- ...", setup: secretsSetCmd,
			summary: "set an install's secrets",
			about: "Stores secrets for tenant T's install of NAME, sealed at rest. KEY=@FILE reads a " +
				"file and KEY=- reads stdin (once); one trailing newline is dropped. Empty values are " +
				"refused (secrets unset deletes) and values are never printed." + registryAbout},
		{name: "secrets unset", args: "--tenant T --extension NAME KEY ...", setup: secretsUnsetCmd,
			summary: "delete an install's secrets",
			about:   "Deletes the named secrets of tenant T's install of NAME." + registryAbout},
		{name: "events publish", args: "--tenant T --topic TOPIC [--id ID] [--occurred-at RFC3339] [--payload JSON|@FILE|-]", setup: eventsPublishCmd,
			summary: "publish a PSA event to the tenant's subscribed installs",
			about: "Publishes an event (SPEC §18) for tenant T: one delivery per enabled install " +
				"subscribed to TOPIC. The payload is JSON text, @FILE or - (stdin); without --id a random " +
				"id is made up and printed, and publishing the same id again delivers nothing twice. " +
				"Needs a platform_admin or service token." + registryAbout},
		{name: "events list", args: "--tenant T --extension NAME [--status pending|leased|succeeded|dead] [--limit N]", setup: eventsListCmd,
			summary: "list an install's event deliveries",
			about: "Lists tenant T's deliveries to its install of NAME, newest first, with their status, " +
				"attempts, next attempt or lease end, and last error." + registryAbout},
		{name: "events retry", args: "--tenant T --extension NAME DELIVERY_ID...", setup: eventsRetryCmd,
			summary: "make dead deliveries pending again",
			about: "Resets each dead delivery of tenant T's install of NAME to pending with a fresh " +
				"attempt budget; a delivery that is not dead is refused (delivery_not_dead)." + registryAbout},
		{name: "logs", args: "--tenant T --extension NAME [--since WHEN] [--outcome O] [--endpoint E] [--status S] [--request-id ID] [--limit N] [--follow]", setup: logsCmd,
			summary: "print an install's execution history, then optionally follow its live debug stream",
			about: "Prints the newest --limit calls of tenant T's extension NAME that match the filters, " +
				"oldest first: start, request id, endpoint, outcome, guest status, duration, CPU and egress " +
				"(SPEC §21). With --follow it then tails the gateway's live debug stream of NAME " +
				"(--gateway, with a JWT holding extension:debug in --gateway-token-file; the stream is " +
				"that token's tenant's), reconnecting after drops, until Ctrl-C. With --json every " +
				`record and entry is one JSON line, {"type":"execution",…} or {"type":"debug","id",…}.` + registryAbout},
		{name: "usage", args: "--tenant T --extension NAME [--since WHEN] [--until WHEN]", setup: usageCmd,
			summary: "print an install's per-minute invocations, errors, CPU ms and egress bytes",
			about: "Prints, for each minute since --since (default the last hour) in which tenant T's " +
				"extension NAME was called, its invocations, errors, CPU milliseconds and egress bytes, " +
				"then the totals. --json prints the registry's report " +
				`{"tenant_id","extension","from","to","minutes":[…],"total":{…}}.` + registryAbout},
		{name: "revoke", args: "--extension NAME --version V --reason R", setup: revokeCmd,
			summary: "revoke a published version",
			about: "Marks a version revoked with a reason: installs pinned to it stop serving, and it " +
				"can no longer be installed." + registryAbout},
		{name: "deprecate", args: "--extension NAME --reason R", setup: deprecateCmd,
			summary: "mark an extension deprecated",
			about: "Marks the extension NAME deprecated with a reason (SPEC §7.3): `list` and the catalog " +
				"show it, and the change feed tells gateways. Deprecation is of the whole extension; " +
				"existing installs keep serving and it can still be installed. To stop a single version, " +
				"use revoke. Needs a platform admin token." + registryAbout},
		{name: "list", args: "[--tenant T]", setup: listCmd,
			summary: "list the catalog, or a tenant's installs",
			about: "Lists the registry's extensions with their latest version, or with --tenant " +
				"that tenant's installs (secret keys only, never values)." + registryAbout},
		{name: "version", setup: versionCmd,
			summary: "print extctl's version, commit and Go version",
			about: "Prints the version, the VCS commit it was built from (\", modified\" for a tree " +
				"with uncommitted changes) and the Go version. `extctl --version` prints the same. " +
				`With --json: {"version","commit","modified","go_version"}.`},
		{name: "completion", args: "bash|zsh|fish", words: completionShells, setup: completionCmd,
			summary: "print a shell completion script",
			about: "Prints a completion script for bash, zsh or fish, generated from extctl's command " +
				"table: commands, subcommands and each command's flags. Load it with " +
				"`source <(extctl completion bash)` (zsh likewise, or save it as _extctl in $fpath) " +
				"or `extctl completion fish | source`."},
		{name: "help", args: "[COMMAND [SUBCOMMAND]]", setup: helpCmd,
			summary: "show help for extctl or for one command",
			about: "Without arguments, lists every command. With a command, prints its usage, " +
				"what it does and every flag with its default and environment variable; " +
				"`extctl COMMAND --help` prints the same."},
	}
}

// platformAbout describes the platform-admin install fields.
const platformAbout = " Quotas (--quota-*) and instance reuse (--instance-reuse, --reuse-*) are set by a " +
	"platform admin: only the ones given change, the rest keep their value, and a tenant admin giving " +
	"any of them is refused (forbidden)."

// registryAbout ends the description of every registry command.
const registryAbout = " The registry is --registry, else $EXTEDGE_REGISTRY, else " + DefaultRegistry +
	"; the admin token is the whole --token-file, trimmed, else $EXTEDGE_TOKEN."

// groups are the first words of commands with subcommands ("secrets").
func groups() []string {
	var out []string
	for _, c := range commands {
		if g, _, ok := strings.Cut(c.name, " "); ok && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// subcommands returns the commands under group, in table order.
func subcommands(group string) []*command {
	var out []*command
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			out = append(out, c)
		}
	}
	return out
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// unknownCommandError is a command name that is not in the table.
type unknownCommandError struct{ name string }

func (e unknownCommandError) Error() string {
	return fmt.Sprintf("unknown command %q (run extctl --help)", e.name)
}

// groupError is a group ("secrets") given without a known subcommand.
type groupError struct{ group string }

func (e groupError) Error() string {
	var names []string
	for _, s := range subcommands(e.group) {
		names = append(names, strings.TrimPrefix(s.name, e.group+" "))
	}
	return fmt.Sprintf("%s needs a subcommand: %s (see extctl help %s)", e.group, strings.Join(names, ", "), e.group)
}

// lookup finds the command args start with and returns it with the rest
// of the arguments.
func lookup(args []string) (*command, []string, error) {
	if isGroup(args[0]) {
		if len(args) == 1 || strings.HasPrefix(args[1], "-") {
			return nil, nil, groupError{args[0]}
		}
		if c := findCommand(args[0] + " " + args[1]); c != nil {
			return c, args[2:], nil
		}
		return nil, nil, unknownCommandError{args[0] + " " + args[1]}
	}
	if c := findCommand(args[0]); c != nil {
		return c, args[1:], nil
	}
	return nil, nil, unknownCommandError{args[0]}
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func isGroup(name string) bool { return slices.Contains(groups(), name) }
