package store

import (
	"slices"
	"testing"

	"github.com/extedge/extedge/internal/tenantid"
)

func TestCompareSemver(t *testing.T) {
	cases := []struct {
		name string
		a, b string
		want int
	}{
		{"numeric minor beats textual order", "1.10.0", "1.2.0", 1},
		{"equal versions", "1.2.3", "1.2.3", 0},
		{"build metadata is ignored", "1.2.3+a", "1.2.3+b", 0},
		{"a release beats its pre-release", "1.0.0", "1.0.0-rc.1", 1},
		{"numeric pre-release identifiers compare numerically", "1.0.0-rc.10", "1.0.0-rc.2", 1},
		{"numeric identifiers sort before alphanumeric", "1.0.0-1", "1.0.0-alpha", -1},
		{"a longer pre-release wins when the prefix is equal", "1.0.0-alpha.1", "1.0.0-alpha", 1},
		{"major dominates", "2.0.0-rc.1", "1.99.99", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := CompareSemver(c.a, c.b); got != c.want {
				t.Fatalf("CompareSemver(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
			}
			if got := CompareSemver(c.b, c.a); got != -c.want {
				t.Fatalf("not antisymmetric: CompareSemver(%s, %s) = %d", c.b, c.a, got)
			}
		})
	}
}

func TestEffectiveCaps(t *testing.T) {
	cases := []struct {
		name              string
		granted, declared []string
		want              []string
	}{
		{"granted but undeclared is dropped", []string{"http.fetch", "secrets.get"}, []string{"http.fetch"},
			[]string{"context.read", "http.fetch", "log.emit", "metrics.emit"}},
		{"declared but ungranted is dropped", nil, []string{"storage.kv"},
			[]string{"context.read", "log.emit", "metrics.emit"}},
		{"always-granted ones are always there", []string{"log.emit"}, nil,
			[]string{"context.read", "log.emit", "metrics.emit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := EffectiveCaps(c.granted, c.declared); !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestPlatformScopeIsNoTenantID(t *testing.T) {
	// Tenant-facing input is checked with tenantid.Valid; the platform
	// scope must never pass it, or a tenant named "*" would read across
	// tenants.
	if tenantid.Valid(platformScope) {
		t.Fatalf("platform scope %q passes tenantid.Valid", platformScope)
	}
}
