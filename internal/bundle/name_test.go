package bundle

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		why, name, rule string
	}{
		{"plain root file is accepted", "manifest.json", ""},
		{"nested file is accepted", "ui/assets/app.js", ""},
		{"utf-8 name is accepted", "ui/ünïcødé/日本.txt", ""},
		{"percent escapes are a literal name", "%2e%2e/%2F", ""},
		{"dots inside a segment are accepted", "ui/a..b/c.", ""},
		{"256-byte name is accepted", strings.Repeat("a", 256), ""},
		{"empty name is rejected", "", RuleNameInvalid},
		{"257-byte name is rejected", strings.Repeat("a", 257), RuleNameInvalid},
		{"absolute name is rejected", "/etc/passwd", RuleNameInvalid},
		{"dot-dot segment is rejected", "../evil", RuleNameInvalid},
		{"inner dot-dot is rejected", "a/../../b", RuleNameInvalid},
		{"trailing dot-dot is rejected", "a/..", RuleNameInvalid},
		{"dot segment is rejected", "./a", RuleNameInvalid},
		{"inner dot segment is rejected", "a/./b", RuleNameInvalid},
		{"empty segment is rejected", "a//b", RuleNameInvalid},
		{"trailing slash is rejected", "a/", RuleNameInvalid},
		{"backslash is rejected", `..\evil`, RuleNameInvalid},
		{"NUL is rejected", "a\x00b", RuleNameInvalid},
		{"newline is rejected", "a\nb", RuleNameInvalid},
		{"DEL is rejected", "a\x7fb", RuleNameInvalid},
		{"C1 control is rejected", "a\u0085b", RuleNameInvalid},
		{"line separator is rejected", "a\u2028b", RuleNameInvalid},
		{"right-to-left override is rejected", "a\u202eb", RuleNameInvalid},
		{"invalid utf-8 is rejected", "a\xffb", RuleNameInvalid},
		{"overlong slash is rejected", "a\xc0\xafb", RuleNameInvalid},
		{"overlong dot is rejected", "\xc0\xae\xc0\xae/b", RuleNameInvalid},
		{"surrogate half is rejected", "a\xed\xa0\x80", RuleNameInvalid},
		{"hidden root file is rejected", ".env", RuleNameHidden},
		{"hidden directory is rejected", ".git/config", RuleNameHidden},
		{"hidden nested file is rejected", "ui/.env", RuleNameHidden},
		{"traversal wins over hidden", "../.git", RuleNameInvalid},
	} {
		t.Run(c.why, func(t *testing.T) {
			err := CheckName(c.name)
			if got := RuleOf(err); got != c.rule {
				t.Fatalf("CheckName(%q) rule = %q, want %q (err: %v)", c.name, got, c.rule, err)
			}
			if err != nil {
				var re *RuleError
				re = err.(*RuleError)
				if re.Name != c.name {
					t.Errorf("RuleError.Name = %q, want %q", re.Name, c.name)
				}
			}
		})
	}
}

func TestRuleErrorQuotesName(t *testing.T) {
	err := CheckName("a\x1b[2Jb")
	if strings.ContainsRune(err.Error(), 0x1b) {
		t.Errorf("error message carries a raw escape: %q", err.Error())
	}
}

func TestHashes(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		why, in, want string
		ok            bool
	}{
		{"canonical hash is accepted", "sha256:" + hex64, "sha256:" + hex64, true},
		{"url form with %3A is accepted", "sha256%3A" + hex64, "sha256:" + hex64, true},
		{"url form with %3a is accepted", "sha256%3a" + hex64, "sha256:" + hex64, true},
		{"upper-case hex is rejected", "sha256:" + strings.ToUpper(hex64), "", false},
		{"short hex is rejected", "sha256:" + hex64[:63], "", false},
		{"long hex is rejected", "sha256:" + hex64 + "0", "", false},
		{"missing prefix is rejected", hex64, "", false},
		{"other algorithm is rejected", "sha512:" + hex64, "", false},
		{"double-encoded colon is rejected", "sha256%253A" + hex64, "", false},
		{"empty is rejected", "", "", false},
		{"path tricks are rejected", "sha256:../../" + hex64[:58], "", false},
	} {
		t.Run(c.why, func(t *testing.T) {
			got, err := ParseHash(c.in)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("ParseHash(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
			}
			if ValidHash(c.in) != (c.ok && c.in == c.want) {
				t.Errorf("ValidHash(%q) = %v", c.in, ValidHash(c.in))
			}
		})
	}
}

func TestHashReaderKnownValue(t *testing.T) {
	h, n, err := HashReader(strings.NewReader("abc"))
	if err != nil || n != 3 || h != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashReader = %q, %d, %v", h, n, err)
	}
}
