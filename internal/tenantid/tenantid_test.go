package tenantid

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want bool
	}{
		{"one character is a tenant id", "t", true},
		{"letters, digits, dot, underscore and dash are allowed", "A.b_c-9", true},
		{"a plain name is a tenant id", "tenant-a", true},
		{"a UUID qualifies", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", true},
		{"dots alone are allowed (opaque id)", "..", true},
		{"64 bytes is the maximum", strings.Repeat("a", 64), true},
		{"empty is refused", "", false},
		{"65 bytes is too long", strings.Repeat("a", 65), false},
		{"the platform scope * is not a tenant id", "*", false},
		{"a wildcard inside is refused", "tenant-*", false},
		{"a space is refused", "a b", false},
		{"a slash is refused", "a/b", false},
		{"a colon is refused (it separates debug stream key parts)", "a:b", false},
		{"unicode letters are refused", "ü", false},
		{"a NUL byte is refused", "a\x00b", false},
		{"64 NUL bytes are refused", string(make([]byte, 64)), false},
		{"65 NUL bytes are refused", string(make([]byte, 65)), false},
		{"a trailing newline is refused", "tenant\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Valid(c.in); got != c.want {
				t.Fatalf("Valid(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}
