// Command extctl is the CLI for extension authors and tenant admins
// (SPEC §10): keys, canonical packing, signing, verification, inspection,
// and the registry calls (publish, install…).
//
// Output is human-readable by default and JSON with --json. Every failure
// exits non-zero with one line on stderr: "extctl: <reason>".
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one extctl subcommand.
type command struct {
	usage string
	run   func(ctx *cli, args []string) error
}

var commands = map[string]command{}

func register(name, usage string, run func(*cli, []string) error) {
	commands[name] = command{usage: usage, run: run}
}

// cli carries the streams so tests can run commands in-process.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	isTerminal     bool
}

// usageError marks errors that should print the command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, isTerminal: isTerminal(os.Stderr)}
	os.Exit(c.main(os.Args[1:]))
}

func (c *cli) main(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.printUsage(c.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	if len(args) > 1 && (name == "secrets" || name == "events") {
		name += " " + args[1]
		args = args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(c.stderr, "extctl: unknown command %q (run extctl --help)\n", args[0])
		return 2
	}
	if err := cmd.run(c, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		fmt.Fprintf(c.stderr, "extctl: %s\n", msg)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(c.stderr, "usage: extctl %s\n", cmd.usage)
			return 2
		}
		return 1
	}
	return 0
}

func (c *cli) printUsage(w io.Writer) {
	fmt.Fprintln(w, "extctl — build, sign and publish extedge extensions")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  extctl %s\n", commands[n].usage)
	}
	fmt.Fprintln(w, "\nevery command accepts --json for machine-readable output")
}

// parseInterspersed parses flags that may appear before, between or after
// positional arguments (`extctl pack DIR -o out` and `extctl pack -o out DIR`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
