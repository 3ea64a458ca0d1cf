package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletionScriptsCoverTheCommandTable: each shell's script is
// non-empty and names every command and subcommand; the bash one also
// every flag of every command, and passes bash -n.
func TestCompletionScriptsCoverTheCommandTable(t *testing.T) {
	for _, shell := range completionShells {
		t.Run(shell, func(t *testing.T) {
			out := mustRun(t, "completion", shell)
			if strings.TrimSpace(out) == "" {
				t.Fatal("empty script")
			}
			for _, cmd := range commands {
				for _, word := range strings.Fields(cmd.name) {
					if !strings.Contains(out, word) {
						t.Errorf("script does not name %q (of %q)", word, cmd.name)
					}
				}
				if shell != "bash" {
					continue
				}
				if !strings.Contains(out, `"`+cmd.name+`")`) {
					t.Errorf("bash script has no case for %q", cmd.name)
				}
				for _, f := range completionFlags(cmd) {
					if !strings.Contains(out, f.spelling()) {
						t.Errorf("bash script lacks %s of %q", f.spelling(), cmd.name)
					}
				}
			}
		})
	}
	code, _, errOut := run(t, "completion", "tcsh")
	if code != 2 || !strings.Contains(errOut, `unknown shell "tcsh"`) {
		t.Fatalf("completion tcsh: exit %d, %q", code, errOut)
	}
}

func TestBashCompletionSyntaxAndBehaviour(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found: the completion test runs the bash script (`apt-get install bash`)")
	}
	script := filepath.Join(t.TempDir(), "extctl.bash")
	if err := os.WriteFile(script, []byte(mustRun(t, "completion", "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	cases := []struct {
		name  string
		words string // COMP_WORDS; the last one is being completed
		want  string
	}{
		{"a command by prefix", "extctl unin", "uninstall"},
		{"a group's subcommands", "extctl secrets ''", "set unset --help"},
		{"a subcommand's flags", "extctl secrets set --ten", "--tenant"},
		{"a short flag", "extctl pack dir -", "--json -o --help"},
		{"the shells of completion", "extctl completion ''", "bash zsh fish"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prog := "source " + script + "\nCOMP_WORDS=(" + tc.words + ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_extctl\necho \"${COMPREPLY[*]}\"\n"
			out, err := exec.Command(bash, "-c", prog).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.want {
				t.Fatalf("completing %q = %q (%v), want %q", tc.words, out, err, tc.want)
			}
		})
	}
}
