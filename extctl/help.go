package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// helpWidth is the column help paragraphs are wrapped at.
const helpWidth = 78

func (c *cli) printOverview(w io.Writer) {
	fmt.Fprintln(w, "extctl — build, sign and publish extedge extensions, and manage their installs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: extctl <command> [arguments] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	width := 0
	for _, cmd := range commands {
		width = max(width, len(cmd.name))
	}
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, cmd.name, cmd.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, wrap("Run `extctl help <command>` (or `extctl <command> --help`) for a command's "+
		"flags, defaults and environment variables. Every command takes --json for "+
		"machine-readable output. Flags may come before, between or after arguments. "+
		"extctl --version prints the version.", "", helpWidth))
}

// synopsis is the usage line of cmd.
func synopsis(cmd *command) string {
	s := "extctl " + cmd.name
	if cmd.args != "" {
		s += " " + cmd.args
	}
	return s + " [flags]"
}

// printCommandHelp prints cmd's usage, description and every flag with
// its default and environment variable.
func printCommandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "usage: %s\n\n", synopsis(cmd))
	fmt.Fprint(w, wrap(cmd.about, "", helpWidth))
	fs := newFlagSet(cmd.name)
	cmd.setup(fs)
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if placeholder != "" {
			line += " " + placeholder
		}
		fmt.Fprintln(w, line)
		// "\x00" keeps "env NAME" on one line.
		fmt.Fprint(w, strings.ReplaceAll(wrap(usage+" "+flagNote(fs, f), "      ", helpWidth), "\x00", " "))
	})
}

// flagNote is "(default …; env …)" for f.
func flagNote(fs *flagSet, f *flag.Flag) string {
	var parts []string
	if !strings.Contains(f.Usage, "default") {
		parts = append(parts, defaultText(f))
	}
	if v := fs.env[f.Name]; v != "" {
		parts = append(parts, "env\x00"+v)
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, "; ") + ")"
}

func defaultText(f *flag.Flag) string {
	switch f.Value.(type) {
	case *stringList:
		return "default none"
	case *optInt, *optSwitch, *optDuration:
		return "default: keep the current value"
	}
	if getter, ok := f.Value.(flag.Getter); ok {
		switch v := getter.Get().(type) {
		case string:
			if v == "" {
				return "no default"
			}
			return fmt.Sprintf("default %q", v)
		case time.Duration:
			if v == 0 {
				return "default 0: no limit"
			}
		}
	}
	return "default " + f.DefValue
}

// printGroupHelp prints the subcommands of group ("secrets").
func printGroupHelp(w io.Writer, group string) {
	subs := subcommands(group)
	names := make([]string, len(subs))
	width := 0
	for i, s := range subs {
		names[i] = strings.TrimPrefix(s.name, group+" ")
		width = max(width, len(s.name))
	}
	fmt.Fprintf(w, "usage: extctl %s %s ...\n\nsubcommands:\n", group, strings.Join(names, "|"))
	for _, s := range subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun `extctl help %s <subcommand>` for its flags.\n", group)
}

// wrap breaks text into lines of at most width columns, each starting
// with indent, and ends it with a newline.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// helpCmd is `extctl help [COMMAND [SUBCOMMAND]]`.
func helpCmd(fs *flagSet) runFunc {
	fs.jsonFlag()
	return func(c *cli, args []string) error {
		if len(args) == 0 {
			c.printOverview(c.stdout)
			return nil
		}
		if len(args) == 1 && isGroup(args[0]) {
			printGroupHelp(c.stdout, args[0])
			return nil
		}
		cmd, rest, err := lookup(args)
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("%s has no subcommand %q", cmd.name, rest[0])}
		}
		printCommandHelp(c.stdout, cmd)
		return nil
	}
}
