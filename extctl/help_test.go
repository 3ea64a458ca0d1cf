package main

import (
	"flag"
	"strings"
	"testing"
)

// TestHelpForEveryCommand: `extctl help CMD`, `extctl CMD --help` and
// `extctl CMD -h` print the same text on stdout and exit 0, for every
// command of the table, naming each of the command's flags.
func TestHelpForEveryCommand(t *testing.T) {
	for _, cmd := range commands {
		t.Run(cmd.name, func(t *testing.T) {
			words := strings.Fields(cmd.name)
			code, want, errOut := run(t, append([]string{"help"}, words...)...)
			if code != 0 || errOut != "" {
				t.Fatalf("extctl help %s: exit %d, stderr %q", cmd.name, code, errOut)
			}
			for _, h := range []string{"--help", "-h"} {
				code, got, errOut := run(t, append(words, h)...)
				if code != 0 || errOut != "" || got != want {
					t.Fatalf("extctl %s %s: exit %d, stderr %q, stdout differs from extctl help:\n%s", cmd.name, h, code, errOut, got)
				}
			}
			if !strings.HasPrefix(want, "usage: extctl "+cmd.name) {
				t.Errorf("help does not start with the usage line:\n%s", want)
			}
			fs := newFlagSet(cmd.name)
			cmd.setup(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(want, "-"+f.Name+"\n") && !strings.Contains(want, "-"+f.Name+" ") {
					t.Errorf("help does not list --%s", f.Name)
				}
				if v := fs.env[f.Name]; v != "" && !strings.Contains(want, "env "+v) {
					t.Errorf("help does not name %s for --%s", v, f.Name)
				}
			})
		})
	}
}

func TestHelpOverviewListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := run(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("extctl %v: exit %d, stderr %q", args, code, errOut)
		}
		for _, cmd := range commands {
			if !strings.Contains(out, "  "+cmd.name+" ") || !strings.Contains(out, cmd.summary) {
				t.Errorf("extctl %v does not list %q with its summary", args, cmd.name)
			}
		}
	}
	if code, _, errOut := run(t); code != 2 || !strings.Contains(errOut, "commands:") {
		t.Fatalf("bare extctl: exit %d, stderr %q; want 2 and the overview on stderr", code, errOut)
	}
}

func TestHelpForGroupsAndUnknownCommands(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIs string
	}{
		{"secrets --help lists its subcommands", []string{"secrets", "--help"}, 0, "secrets unset", ""},
		{"help secrets lists its subcommands", []string{"help", "secrets"}, 0, "secrets set", ""},
		{"secrets alone names the subcommands", []string{"secrets"}, 2, "", "extctl: secrets needs a subcommand: set, unset"},
		{"unknown subcommand", []string{"secrets", "rotate"}, 2, "", `extctl: unknown command "secrets rotate"`},
		{"help of an unknown command", []string{"help", "frobnicate"}, 2, "", `extctl: unknown command "frobnicate"`},
		{"a usage error names the help command", []string{"pack"}, 2, "", "usage: extctl pack DIR -o FILE [flags] (see extctl help pack)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderrIs) {
				t.Fatalf("exit %d (want %d), stdout %q (want %q), stderr %q (want %q)", code, tc.code, out, tc.stdout, errOut, tc.stderrIs)
			}
		})
	}
}

// TestEnvFallbackIsNotTheHelpDefault: a flag's variable fills it when the
// flag is not given, but help shows the compiled-in default.
func TestEnvFallbackIsNotTheHelpDefault(t *testing.T) {
	t.Setenv("EXTEDGE_REGISTRY", "ftp://example.invalid")
	code, out, _ := run(t, "list", "--help")
	if code != 0 || !strings.Contains(out, `default "`+DefaultRegistry+`"`) || strings.Contains(out, "ftp://") {
		t.Fatalf("help with EXTEDGE_REGISTRY set: exit %d\n%s", code, out)
	}
	code, _, errOut := run(t, "list")
	if code != 2 || !strings.Contains(errOut, `--registry "ftp://example.invalid"`) {
		t.Fatalf("list with a bad EXTEDGE_REGISTRY: exit %d, %q", code, errOut)
	}
}
