package secretbox

import (
	"strconv"
	"strings"
	"testing"
)

func TestValidKey(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want bool
	}{
		{"an environment-style name is a key", "API_TOKEN", true},
		{"lowercase, digits, dots and dashes are allowed", "vendor.api-key2", true},
		{"one character is a key", "K", true},
		{"dots alone are allowed", "..", true},
		{"128 bytes is the maximum", strings.Repeat("k", MaxKeyLen), true},
		{"empty is refused", "", false},
		{"129 bytes is too long", strings.Repeat("k", MaxKeyLen+1), false},
		{"a wildcard is refused", "*", false},
		{"an equals sign is refused (extctl splits KEY=VALUE on it)", "A=B", false},
		{"a space is refused", "API TOKEN", false},
		{"a slash is refused", "a/b", false},
		{"a colon is refused", "a:b", false},
		{"unicode letters are refused", "schlüssel", false},
		{"a NUL byte is refused", "a\x00", false},
		{"a newline is refused", "KEY\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ValidKey(c.in); got != c.want {
				t.Fatalf("ValidKey(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestKeyRuleStatesMaxKeyLen(t *testing.T) {
	if !strings.Contains(KeyRule, strconv.Itoa(MaxKeyLen)) {
		t.Fatalf("KeyRule %q does not state MaxKeyLen %d", KeyRule, MaxKeyLen)
	}
}
