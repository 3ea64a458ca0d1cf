// Command extctl is the CLI for extension authors and tenant admins
// (SPEC §10): keys, canonical packing, signing, verification, inspection,
// and the registry calls (publish, install…).
//
// Every command is one entry of the table in commands.go; dispatch, help
// (extctl help CMD, CMD --help) and shell completion are all read from it.
// Output is human-readable by default and JSON with --json. Every failure
// exits non-zero with one line on stderr: "extctl: <reason>", or with
// --json the object {"error":{"code":…,"message":…}}.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// cli carries the streams so tests can run commands in-process.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	isTerminal     bool // stderr is a terminal (progress bars)
	stdinTerminal  bool // stdin is a terminal (confirmation prompts)
	// ctx is the parent of long-running commands' contexts (logs
	// --follow); nil is context.Background. Tests cancel it to stop them.
	ctx context.Context
}

func (c *cli) context() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// usageError marks errors that should print the command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin,
		isTerminal: isTerminal(os.Stderr), stdinTerminal: isTerminal(os.Stdin)}
	os.Exit(c.main(os.Args[1:]))
}

func (c *cli) main(args []string) int {
	asJSON := wantsJSON(args)
	if len(args) == 0 {
		c.printOverview(c.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		c.printOverview(c.stdout)
		return 0
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	if isGroup(args[0]) && len(args) > 1 && isHelpFlag(args[1]) {
		printGroupHelp(c.stdout, args[0])
		return 0
	}
	cmd, rest, err := lookup(args)
	if err == nil {
		err = c.runCommand(cmd, rest)
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return c.fail(err, cmd, asJSON)
}

// runCommand parses a command's flags (from the command line, then from
// their environment variables) and runs it. -h/--help prints its help.
func (c *cli) runCommand(cmd *command, args []string) error {
	fs := newFlagSet(cmd.name)
	run := cmd.setup(fs)
	pos, err := parseInterspersed(fs.FlagSet, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(c.stdout, cmd)
		return err
	}
	if err == nil {
		err = fs.applyEnv()
	}
	if err != nil {
		return err
	}
	return run(c, pos)
}

// fail prints err as one line, or with --json as
// {"error":{"code","message"[,"details"]}}, on stderr and returns the exit
// code: 2 for usage errors, 1 for everything else.
func (c *cli) fail(err error, cmd *command, asJSON bool) int {
	code, exit := errorCode(err)
	if asJSON {
		writeJSONError(c.stderr, code, err)
		return exit
	}
	fmt.Fprintf(c.stderr, "extctl: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "usage: %s (see extctl help %s)\n", synopsis(cmd), cmd.name)
	}
	return exit
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
