package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/registryapi"
)

// TestPlatformAdminSetsQuotasAndInstanceReuse: a platform admin sets an
// install's quotas and instance reuse with install and upgrade, one field
// at a time without losing the others; a tenant admin giving any of them
// gets the registry's forbidden as one line (and as JSON with --json).
func TestPlatformAdminSetsQuotasAndInstanceReuse(t *testing.T) {
	r := startRegistry(t)
	key := filepath.Join(r.keys, "publisher.key")
	b1, s1, _ := packSigned(t, key, nil, nil)
	b2, s2, _ := packSigned(t, key, func(m string) string { return strings.Replace(m, `"1.0.0"`, `"1.1.0"`, 1) }, nil)
	r.admin(t, "publish", b1, "--signature", s1)
	r.admin(t, "publish", b2, "--signature", s2)
	const ext, tenant = "com.example.cli", "tenant-a"

	in := decodeJSON[registryapi.Install](t, r.admin(t, "install", "--tenant", tenant, "--extension", ext, "--version", "1.0.0",
		"--quota-invocations-per-minute", "600", "--quota-concurrent-calls", "4", "--json"))
	if in.Quotas == nil || *in.Quotas != (registryapi.Quotas{InvocationsPerMinute: 600, ConcurrentCalls: 4}) {
		t.Fatalf("quotas after install = %+v", in.Quotas)
	}
	if in.InstanceReuse.Normalized().Enabled {
		t.Fatalf("instance reuse on without --instance-reuse: %+v", in.InstanceReuse)
	}

	// One quota more keeps the others; reuse on with bounds.
	out := r.admin(t, "install", "--tenant", tenant, "--extension", ext, "--quota-cpu-ms-per-minute", "2000",
		"--instance-reuse", "on", "--reuse-max-calls", "50", "--reuse-max-age", "30s")
	for _, want := range []string{"quotas          600 calls/min, 4 concurrent, 2000 CPU ms/min", "instance reuse  on (max 50 calls, max age 30s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}

	// Upgrade keeps them, and can change one reuse bound and clear a quota.
	up := decodeJSON[registryapi.Install](t, r.admin(t, "upgrade", "--tenant", tenant, "--extension", ext, "--version", "1.1.0",
		"--quota-concurrent-calls", "0", "--reuse-max-calls", "10", "--json"))
	if up.Version.Version != "1.1.0" || *up.Quotas != (registryapi.Quotas{InvocationsPerMinute: 600, CPUMsPerMinute: 2000}) ||
		up.InstanceReuse.Normalized() != (registryapi.InstanceReuse{Enabled: true, MaxCalls: 10, MaxAgeMS: 30000}) {
		t.Fatalf("after upgrade: version %s quotas %+v reuse %+v", up.Version.Version, up.Quotas, up.InstanceReuse)
	}

	// A tenant admin may change its own install's other settings, but not these.
	tenantFlags := r.flags(r.tenantToken)
	if code, _, errOut := runIO(t, "", false, append([]string{"install", "--tenant", tenant, "--extension", ext, "--config", "a=1"}, tenantFlags...)...); code != 0 {
		t.Fatalf("tenant admin config change: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{
		{"install", "--tenant", tenant, "--extension", ext, "--quota-invocations-per-minute", "100000"},
		{"upgrade", "--tenant", tenant, "--extension", ext, "--version", "1.1.0", "--instance-reuse", "off"},
	} {
		code, _, errOut := runIO(t, "", false, append(args, tenantFlags...)...)
		if line := oneErrorLine(t, code, errOut, "forbidden"); !strings.Contains(line, "platform admin") {
			t.Errorf("%s as tenant admin: %q does not say a platform admin is needed", args[0], line)
		}
		code, _, errOut = runIO(t, "", false, append(append(args, "--json"), tenantFlags...)...)
		e := decodeJSON[struct {
			Error struct{ Code, Message string } `json:"error"`
		}](t, errOut)
		if code != 1 || e.Error.Code != "forbidden" || !strings.Contains(e.Error.Message, "platform admin") {
			t.Errorf("%s --json as tenant admin: exit %d, %s", args[0], code, errOut)
		}
	}
	got := decodeJSON[registryapi.Install](t, r.admin(t, "upgrade", "--tenant", tenant, "--extension", ext, "--version", "1.1.0", "--instance-reuse", "off", "--json"))
	if got.Quotas.InvocationsPerMinute != 600 || got.InstanceReuse.Normalized().Enabled {
		t.Fatalf("after the tenant's refused changes and reuse off: quotas %+v reuse %+v", got.Quotas, got.InstanceReuse)
	}

	// Bad values are usage errors before anything is sent.
	for _, args := range [][]string{
		{"--quota-concurrent-calls", "-1"},
		{"--quota-cpu-ms-per-minute", "lots"},
		{"--instance-reuse", "maybe"},
		{"--instance-reuse", "off", "--reuse-max-calls", "5"},
		{"--reuse-max-age", "1500us"},
	} {
		code, _, errOut := runIO(t, "", false, append([]string{"install", "--tenant", tenant, "--extension", ext}, append(args, r.flags(r.adminToken)...)...)...)
		if code != 2 {
			t.Errorf("install %v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	// Bounds on a reuse that is off are refused too (nothing to bound).
	code, _, errOut := runIO(t, "", false, append([]string{"install", "--tenant", tenant, "--extension", ext, "--reuse-max-calls", "5"}, r.flags(r.adminToken)...)...)
	if code != 2 || !strings.Contains(errOut, "--instance-reuse on") {
		t.Errorf("--reuse-max-calls with reuse off: exit %d, %s", code, errOut)
	}
}

// TestDeprecate: a platform admin deprecates an extension and list shows
// the reason; a tenant admin is refused (forbidden), an unknown extension
// is not_found, and --reason is required.
func TestDeprecate(t *testing.T) {
	r := startRegistry(t)
	b1, s1, _ := packSigned(t, filepath.Join(r.keys, "publisher.key"), nil, nil)
	r.admin(t, "publish", b1, "--signature", s1)
	const ext = "com.example.cli"

	if out := r.admin(t, "deprecate", "--extension", ext, "--reason", "use com.example.cli2"); out != "deprecated com.example.cli: use com.example.cli2\n" {
		t.Fatalf("deprecate printed %q", out)
	}
	e := decodeJSON[registryapi.Extension](t, r.admin(t, "deprecate", "--extension", ext, "--reason", "gone in 2027", "--json"))
	if e.Name != ext || e.Deprecation == nil || e.Deprecation.Reason != "gone in 2027" || e.Deprecation.At.IsZero() {
		t.Fatalf("deprecate --json = %+v", e)
	}
	if out := r.admin(t, "list"); !strings.Contains(out, "gone in 2027") {
		t.Fatalf("list does not show the deprecation:\n%s", out)
	}

	code, _, errOut := runIO(t, "", false, append([]string{"deprecate", "--extension", ext, "--reason", "x"}, r.flags(r.tenantToken)...)...)
	oneErrorLine(t, code, errOut, "forbidden")
	code, _, errOut = runIO(t, "", false, append([]string{"deprecate", "--extension", "com.example.nope", "--reason", "x"}, r.flags(r.adminToken)...)...)
	oneErrorLine(t, code, errOut, "not_found")
	if code, _, _ := runIO(t, "", false, append([]string{"deprecate", "--extension", ext}, r.flags(r.adminToken)...)...); code != 2 {
		t.Fatalf("deprecate without --reason: exit %d, want 2", code)
	}
}
