package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestXcaddyScript runs ../../xcaddy.sh with a fake xcaddy first on PATH
// (the real one needs network module downloads; the fake records its
// arguments and then behaves as told). It checks the two failures issue 15
// found: the arguments xcaddy v0.4.5 needs (--with the caddymodule package,
// --replace the module root: the root has no package), and that a failing
// xcaddy falls back to the plain build under set -e — unless XCADDY=1.
func TestXcaddyScript(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	argsFile := filepath.Join(bin, "args")
	fake := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\nexit ${FAKE_XCADDY_RC:-1}\n"
	if err := os.WriteFile(filepath.Join(bin, "xcaddy"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, env ...string) (string, error) {
		out := filepath.Join(t.TempDir(), "caddy")
		cmd := exec.Command("bash", filepath.Join(root, "xcaddy.sh"), out)
		cmd.Env = append(os.Environ(), append([]string{"PATH=" + bin + ":" + os.Getenv("PATH")}, env...)...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}

	t.Run("failing xcaddy falls back to the plain build", func(t *testing.T) {
		out, err := run(t)
		if err != nil {
			t.Fatalf("xcaddy.sh failed instead of falling back: %v\n%s", err, out)
		}
		if !strings.Contains(out, "falling back") || !strings.Contains(out, "built ") {
			t.Fatalf("no fallback build in the output:\n%s", out)
		}
		args, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal("xcaddy was not called:", err)
		}
		got := strings.Fields(string(args))
		for _, pair := range [][2]string{
			{"--with", "github.com/extedge/extedge/caddymodule"},
			{"--replace", "github.com/extedge/extedge=./"},
		} {
			if !hasPair(got, pair[0], pair[1]) {
				t.Errorf("xcaddy args %q lack %s %s", got, pair[0], pair[1])
			}
		}
		if len(got) < 2 || got[0] != "build" || !strings.HasPrefix(got[1], "v2.") {
			t.Errorf("xcaddy args %q: want build <pinned caddy version> first", got)
		}
	})
	t.Run("XCADDY=1 makes an xcaddy failure fatal", func(t *testing.T) {
		out, err := run(t, "XCADDY=1")
		if err == nil || !strings.Contains(out, "no fallback") {
			t.Fatalf("XCADDY=1 with a failing xcaddy: err %v\n%s", err, out)
		}
	})
}

func hasPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}
