package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/envflag"
	"github.com/extedge/extedge/internal/testenv"
)

// helpBlocks splits flag.PrintDefaults output into each flag's text, by
// flag name.
func helpBlocks(help string) map[string]string {
	blocks := map[string]string{}
	name := ""
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "  -") {
			name = strings.TrimPrefix(strings.Fields(line)[0], "-")
		}
		if name != "" {
			blocks[name] += line + "\n"
		}
	}
	return blocks
}

// TestHelpNamesEveryVariable: every subcommand's -h gives each flag its
// EXTEDGE_<FLAG> variable (and SPEC's alias), except the per-invocation
// arguments and --allow-unsigned, which have none.
func TestHelpNamesEveryVariable(t *testing.T) {
	tests := []struct {
		cmd     []string
		noEnv   []string
		atLeast []string // flags that must be listed
	}{
		{[]string{"serve"}, []string{"allow-unsigned"}, []string{"listen", "database-url", "database-url-file", "bundle-store",
			"trust-bundle", "secrets-key-file", "allow-unsigned", "migrate", "log-level", "max-bundle-bytes", "kv-max-records",
			"kv-max-bytes", "envelope-ttl", "execution-log-retention", "event-retention", "event-max-attempts", "event-backoff", "database-wait", "tmp-dir", "tls-cert", "tls-key"}},
		{[]string{"migrate"}, nil, []string{"database-url", "database-url-file"}},
		{[]string{"token", "create"}, []string{"role", "tenant", "name", "json"}, []string{"database-url", "database-url-file", "role"}},
		{[]string{"token", "list"}, []string{"json"}, []string{"database-url", "database-url-file", "json"}},
		{[]string{"token", "revoke"}, nil, []string{"database-url", "database-url-file"}},
		{[]string{"secrets-key", "rotate"}, nil, []string{"database-url", "database-url-file", "old-key-file", "new-key-file", "batch-size"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			_, help, code := runCLI(t, append(tt.cmd, "--help")...)
			if code != 0 {
				t.Fatalf("--help exited %d", code)
			}
			blocks := helpBlocks(help)
			for _, f := range tt.atLeast {
				if blocks[f] == "" {
					t.Errorf("help does not list --%s:\n%s", f, help)
				}
			}
			for f, text := range blocks {
				skipped := false
				for _, s := range tt.noEnv {
					skipped = skipped || s == f
				}
				want := "[env " + strings.Join(envflag.Names(f, envAliases), ", ") + "]"
				switch {
				case skipped && strings.Contains(text, "[env "):
					t.Errorf("--%s has a variable, want none: %q", f, text)
				case !skipped && !strings.Contains(text, want):
					t.Errorf("--%s: help %q lacks %q", f, text, want)
				}
			}
			if tt.cmd[0] == "serve" && !strings.Contains(blocks["trust-bundle"], "SIGNING_TRUST_BUNDLE") {
				t.Errorf("--trust-bundle lacks SPEC's SIGNING_TRUST_BUNDLE: %q", blocks["trust-bundle"])
			}
		})
	}
}

// TestServeFlagsFromEnvironment: typed variables apply, the command line
// beats them, SPEC's alias works, and --allow-unsigned has no variable.
func TestServeFlagsFromEnvironment(t *testing.T) {
	t.Setenv("EXTEDGE_DATABASE_URL", "postgres://db.example/extedge")
	t.Setenv("EXTEDGE_KV_MAX_RECORDS", "7")
	t.Setenv("EXTEDGE_ENVELOPE_TTL", "90s")
	t.Setenv("EXTEDGE_DATABASE_WAIT", "3s")
	t.Setenv("EXTEDGE_MIGRATE", "true")
	t.Setenv("EXTEDGE_LISTEN", "127.0.0.1:7171")
	t.Setenv("SIGNING_TRUST_BUNDLE", "/etc/extedge/trust.pem")
	t.Setenv("EXTEDGE_ALLOW_UNSIGNED", "true")
	t.Setenv("EXTEDGE_EVENT_MAX_ATTEMPTS", "3")
	t.Setenv("EXTEDGE_EVENT_BACKOFF", "2s")
	f, err := parseServeFlags([]string{"--database-wait", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"EXTEDGE_DATABASE_URL", f.databaseURL, "postgres://db.example/extedge"},
		{"EXTEDGE_KV_MAX_RECORDS (int)", f.kvMaxRecords, int64(7)},
		{"EXTEDGE_ENVELOPE_TTL (duration)", f.envelopeTTL, 90 * time.Second},
		{"--database-wait beats EXTEDGE_DATABASE_WAIT", f.dbWait, 5 * time.Second},
		{"EXTEDGE_MIGRATE (bool)", f.migrate, true},
		{"EXTEDGE_LISTEN", f.listen, "127.0.0.1:7171"},
		{"SIGNING_TRUST_BUNDLE alias", f.trustBundle, "/etc/extedge/trust.pem"},
		{"EXTEDGE_ALLOW_UNSIGNED is not read", f.allowUnsigned, false},
		{"EXTEDGE_EVENT_MAX_ATTEMPTS (int)", f.eventAttempts, 3},
		{"EXTEDGE_EVENT_BACKOFF (duration)", f.eventBackoff, 2 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestBadVariableIsAnErrorNamingIt: a value a flag cannot take stops the
// command, naming the variable — never silently the default.
func TestBadVariableIsAnErrorNamingIt(t *testing.T) {
	tests := []struct {
		name, variable, value string
		cmd                   []string
	}{
		{"duration", "EXTEDGE_DATABASE_WAIT", "soon", []string{"serve"}},
		{"int", "EXTEDGE_KV_MAX_BYTES", "lots", []string{"serve"}},
		{"bool", "EXTEDGE_MIGRATE", "maybe", []string{"serve"}},
		{"listen address", "EXTEDGE_LISTEN", "7070", []string{"serve"}},
		{"event attempts out of range", "EXTEDGE_EVENT_MAX_ATTEMPTS", "0", []string{"serve"}},
		{"event backoff out of range", "EXTEDGE_EVENT_BACKOFF", "1ms", []string{"serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("EXTEDGE_DATABASE_URL", "postgres://127.0.0.1:1/unreachable")
			t.Setenv(tt.variable, tt.value)
			_, errOut, code := runCLI(t, tt.cmd...)
			if code != 1 || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q: want 1 and one line", code, errOut)
			}
			want := tt.variable
			switch tt.variable {
			case "EXTEDGE_LISTEN":
				want = "--listen" // parsed fine as a string, rejected by serve's check
			case "EXTEDGE_EVENT_MAX_ATTEMPTS":
				want = "--event-max-attempts"
			case "EXTEDGE_EVENT_BACKOFF":
				want = "--event-backoff"
			}
			if !strings.Contains(errOut, want) {
				t.Fatalf("stderr %q does not name %s", errOut, want)
			}
		})
	}
}

// TestDatabaseURLFile: --database-url-file (or EXTEDGE_DATABASE_URL_FILE)
// reads the URL from a file, trimmed, in every subcommand; a missing or
// empty file is named; it and --database-url are exclusive.
func TestDatabaseURLFile(t *testing.T) {
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	urlFile := filepath.Join(dir, "database-url")
	if err := os.WriteFile(urlFile, []byte("\n  "+pg.URL()+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("serve reads the file and reaches the database", func(t *testing.T) {
		// The database is still empty, so serve gets as far as the schema
		// check, which only a working URL reaches.
		_, errOut, code := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--database-url-file", urlFile,
			"--bundle-store", "file://"+filepath.Join(dir, "blobs"))
		if code != 1 || !strings.Contains(errOut, "schema is at none") {
			t.Fatalf("exit %d, stderr %q: want the schema check's refusal", code, errOut)
		}
	})
	t.Run("migrate --database-url-file", func(t *testing.T) {
		out, errOut, code := runCLI(t, "migrate", "--database-url-file", urlFile)
		if code != 0 || !strings.Contains(out, "applied 0001_init") {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("token create and list with EXTEDGE_DATABASE_URL_FILE", func(t *testing.T) {
		t.Setenv("EXTEDGE_DATABASE_URL_FILE", urlFile)
		out, errOut, code := runCLI(t, "token", "create", "--role", "service", "--name", "from-file")
		if code != 0 || !strings.HasPrefix(out, "ext_") {
			t.Fatalf("token create: exit %d %q %q", code, out, errOut)
		}
		list, errOut, code := runCLI(t, "token", "list")
		if code != 0 || !strings.Contains(list, "from-file") {
			t.Fatalf("token list: exit %d %q %q", code, list, errOut)
		}
	})

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	missing := filepath.Join(dir, "missing")
	bad := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing file is named", nil, []string{"migrate", "--database-url-file", missing}, missing},
		{"empty file is named", nil, []string{"token", "list", "--database-url-file", empty}, empty},
		{"both flags are exclusive", nil, []string{"migrate", "--database-url", pg.URL(), "--database-url-file", urlFile}, "exclusive"},
		{"a variable and the other flag are exclusive", map[string]string{"EXTEDGE_DATABASE_URL": pg.URL()},
			[]string{"serve", "--database-url-file", urlFile}, "exclusive"},
		{"no database at all names both flags", nil, []string{"token", "revoke", "x"}, "--database-url-file"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("EXTEDGE_DATABASE_URL", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, errOut, code := runCLI(t, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q: want 1 naming %q", code, errOut, tt.want)
			}
			if strings.Contains(errOut, pg.URL()) {
				t.Fatalf("the database URL is in the error: %q", errOut)
			}
		})
	}
}
