package debuglog

import "testing"

func TestStreamKey(t *testing.T) {
	cases := []struct {
		name              string
		tenant, extension string
		want              string
	}{
		{"tenant and extension in SPEC §6.3 order", "tenant-a", "com.acme.crm", "ext-debug:tenant-a:com.acme.crm"},
		{"a UUID tenant", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "com.acme.x", "ext-debug:3f2504e0-4f89-11d3-9a0c-0305e82c3301:com.acme.x"},
		{"dots in the tenant stay as they are", "a.b", "com.acme.x", "ext-debug:a.b:com.acme.x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := StreamKey(c.tenant, c.extension); got != c.want {
				t.Fatalf("StreamKey(%q, %q) = %q, want %q", c.tenant, c.extension, got, c.want)
			}
		})
	}
}
