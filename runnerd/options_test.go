package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/envflag"
)

// TestHelpNamesEveryVariable: `runnerd serve --help` lists each flag with
// its EXTEDGE_<FLAG> variable, the SPEC §6.1 names as aliases, and where
// the runner token itself may come from — without echoing it.
func TestHelpNamesEveryVariable(t *testing.T) {
	t.Setenv(runnerTokenEnv, "tok-must-not-show")
	var out bytes.Buffer
	_, err := parseOptions([]string{"--help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: err = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	flags := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(help, -1)
	if len(flags) < 30 {
		t.Fatalf("help lists %d flags:\n%s", len(flags), help)
	}
	for _, f := range flags {
		want := "[env " + strings.Join(envflag.Names(f[1], envAliases), ", ") + "]"
		if !strings.Contains(help, want) {
			t.Errorf("--%s: help lacks %q", f[1], want)
		}
	}
	for _, want := range []string{
		"[env EXTEDGE_REGISTRY, REGISTRY_BASE_URL]", "[env EXTEDGE_CACHE_DIR, EXT_CACHE_ROOT]",
		"[env EXTEDGE_CACHE_MAX_BYTES, EXT_CACHE_MAX_BYTES]", "[env EXTEDGE_TRUST_BUNDLE, SIGNING_TRUST_BUNDLE]",
		"[env EXTEDGE_EGRESS_ALLOWLIST, EXT_EGRESS_ALLOWLIST]", "[env EXTEDGE_REDIS, RUNNER_DEBUG_REDIS_URL]",
		"[env EXTEDGE_EGRESS_ALLOW_PRIVATE, EXT_EGRESS_ALLOW_PRIVATE]", runnerTokenEnv + " holds the token itself",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(help, "tok-must-not-show") {
		t.Error("help echoes the runner token")
	}
}

func TestEnvironmentSetsTypedFlags(t *testing.T) {
	t.Setenv("EXTEDGE_TRUST_BUNDLE", "/etc/extedge/trust.pem")
	t.Setenv("EXTEDGE_GRACE", "7s")
	t.Setenv("EXTEDGE_FUEL", "true")
	t.Setenv("EXTEDGE_MAX_CONCURRENCY", "3")
	t.Setenv("EXT_CACHE_MAX_BYTES", "64MiB")
	t.Setenv("EXT_CACHE_ROOT", "/alias/cache")
	t.Setenv("EXTEDGE_LISTEN", "unix:///run/a.sock, tcp://127.0.0.1:7001")
	t.Setenv("EXTEDGE_TIMEOUT", "1s") // the command line wins
	o, err := parseOptions([]string{"--timeout", "2s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.grace != 7*time.Second || !o.fuel || o.maxConcurrency != 3 || o.cacheMaxBytes != 64<<20 ||
		o.cacheDir != "/alias/cache" || o.trustBundle != "/etc/extedge/trust.pem" || o.timeout != 2*time.Second {
		t.Fatalf("options %+v", o)
	}
	if strings.Join(o.listen, " ") != "unix:///run/a.sock tcp://127.0.0.1:7001" {
		t.Fatalf("listen %q", o.listen)
	}
}

func TestBadVariableIsAnErrorNamingIt(t *testing.T) {
	t.Setenv("EXTEDGE_TRUST_BUNDLE", "/etc/extedge/trust.pem")
	for _, tt := range []struct{ name, value string }{
		{"EXTEDGE_MAX_CONCURRENCY", "lots"},
		{"EXTEDGE_GRACE", "soon"},
		{"EXT_CACHE_MAX_BYTES", "5TB"},
		{"EXTEDGE_FUEL", "maybe"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			_, err := parseOptions(nil, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("err = %v, want it to name %s", err, tt.name)
			}
		})
	}
}

// TestREADMEListsEveryFlag keeps runnerd/README.md's flag table in step
// with the flags: each flag and each SPEC alias is named there.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	parseOptions([]string{"--help"}, &out)
	for _, f := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		if !bytes.Contains(readme, []byte("`--"+f[1]+"`")) {
			t.Errorf("README.md lacks `--%s`", f[1])
		}
		for _, alias := range envAliases[f[1]] {
			if !bytes.Contains(readme, []byte("`"+alias+"`")) {
				t.Errorf("README.md lacks alias `%s` of --%s", alias, f[1])
			}
		}
	}
}

// TestDeliveryLeaseMustHoldTheCall: a lease shorter than the handler
// timeout would expire under a running delivery, so serve refuses it.
func TestDeliveryLeaseMustHoldTheCall(t *testing.T) {
	cases := []struct {
		name string
		args []string
		ok   bool
	}{
		{"the defaults fit", nil, true},
		{"a lease below timeout + init + margin is refused", []string{"--delivery-lease", "10s", "--timeout", "10s"}, false},
		{"a lease of fractional seconds is refused", []string{"--delivery-lease", "90500ms"}, false},
		{"a lease over an hour is refused", []string{"--delivery-lease", "2h"}, false},
		{"zero delivery concurrency is refused", []string{"--delivery-concurrency", "0"}, false},
		{"deliveries may be turned off", []string{"--deliveries=false"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOptions(append([]string{"--trust-bundle", "/t.pem"}, tc.args...), &bytes.Buffer{})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Setenv("EXTEDGE_DELIVERIES", "false")
	if o, err := parseOptions([]string{"--trust-bundle", "/t.pem"}, &bytes.Buffer{}); err != nil || o.deliveries {
		t.Fatalf("EXTEDGE_DELIVERIES=false: %v %+v", err, o)
	}
}

// TestPoolFlags: the pool is sized from the concurrency and reuse flags by
// default, and a slot may never be smaller than a call's memory limit.
func TestPoolFlags(t *testing.T) {
	cases := []struct {
		name          string
		args          []string
		ok            bool
		instances, mb int
		pooling       bool
	}{
		{"defaults: pooling on, max-concurrency + reuse-max-idle slots of max-memory-mb", nil, true, 16 + 32, 256, true},
		{"the pool follows max-concurrency and max-memory-mb", []string{"--max-concurrency", "4", "--reuse-max-idle", "0", "--max-memory-mb", "128"}, true, 4, 128, true},
		{"explicit sizes win", []string{"--pool-instances", "10", "--pool-max-memory-mb", "512"}, true, 10, 512, true},
		{"pooling can be turned off", []string{"--pooling=false"}, true, 48, 256, false},
		{"a slot below max-memory-mb is refused", []string{"--pool-max-memory-mb", "128"}, false, 0, 0, false},
		{"a slot below memory-mb is refused", []string{"--memory-mb", "300", "--max-memory-mb", "100", "--pool-max-memory-mb", "200"}, false, 0, 0, false},
		{"negative pool instances are refused", []string{"--pool-instances", "-1"}, false, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(append([]string{"--trust-bundle", "/t.pem"}, tc.args...), &bytes.Buffer{})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if o.poolInstances != tc.instances || o.poolMaxMemoryMB != tc.mb || o.pooling != tc.pooling {
				t.Fatalf("pool %d slots of %d MiB, pooling %t", o.poolInstances, o.poolMaxMemoryMB, o.pooling)
			}
		})
	}
}
