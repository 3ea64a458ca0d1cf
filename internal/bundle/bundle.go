// Package bundle reads and writes extension bundles (SPEC §2): zstd-compressed
// tar archives that are packed canonically, addressed by the SHA-256 of their
// bytes, and read by a streaming validator that enforces every §2.1 rule
// (entry types, names, duplicates, hidden files, size and count limits) before
// anything reaches the caller or the disk.
//
// Every rule violation is reported as a *RuleError whose Rule field is one of
// the stable Rule* names below; APIs expose it as details.rule.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Stable rule names carried by RuleError.Rule.
const (
	// RuleEntryType: an entry is neither a regular file nor a directory
	// (symlink, hard link, device, FIFO, sparse file, global PAX header…).
	RuleEntryType = "entry_type"
	// RuleNameInvalid: a name is absolute, has an empty, "." or ".." segment,
	// a backslash, a control character, invalid UTF-8, or is longer than
	// MaxNameLen bytes.
	RuleNameInvalid = "name_invalid"
	// RuleNameHidden: a name has a segment starting with ".".
	RuleNameHidden = "name_hidden"
	// RuleNameDuplicate: a name appears twice, or is used both as a file and
	// as a directory.
	RuleNameDuplicate = "name_duplicate"
	// RuleCompressedTooLarge: the compressed stream exceeds Limits.MaxCompressed.
	RuleCompressedTooLarge = "compressed_too_large"
	// RuleUncompressedTooLarge: the file contents (or the decompressed tar
	// stream, see Limits) exceed Limits.MaxUncompressed.
	RuleUncompressedTooLarge = "uncompressed_too_large"
	// RuleFileTooLarge: one file exceeds Limits.MaxFile.
	RuleFileTooLarge = "file_too_large"
	// RuleTooManyEntries: the archive has more than Limits.MaxEntries entries.
	RuleTooManyEntries = "too_many_entries"
	// RuleCorrupt: the zstd or tar framing is invalid or truncated.
	RuleCorrupt = "corrupt"
	// RuleManifestMissing: there is no regular file manifest.json at the root.
	RuleManifestMissing = "manifest_missing"
)

// ManifestName is the required root entry of every bundle.
const ManifestName = "manifest.json"

// MaxNameLen is the longest entry name accepted, in bytes.
const MaxNameLen = 256

// RuleError reports a violated §2.1 rule. Rule is one of the Rule* constants;
// Name is the offending entry name (raw, possibly not printable) when the rule
// concerns one entry.
type RuleError struct {
	Rule string
	Name string
	Msg  string
}

// Error implements error. The name is quoted, so control characters and
// invalid UTF-8 never reach logs raw.
func (e *RuleError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("bundle rule %s: %s", e.Rule, e.Msg)
	}
	name := e.Name
	if len(name) > 300 {
		name = name[:300] + "…"
	}
	return fmt.Sprintf("bundle rule %s: entry %q: %s", e.Rule, name, e.Msg)
}

// RuleOf returns the rule name of the first *RuleError in err's chain, or ""
// when err is not a rule violation.
func RuleOf(err error) string {
	var re *RuleError
	if errors.As(err, &re) {
		return re.Rule
	}
	return ""
}

// Limits bounds what a reader accepts. A zero or negative field means its
// default (see DefaultLimits), so callers may override single fields.
type Limits struct {
	// MaxCompressed bounds the bundle.tar.zst bytes read. Default: 64 MiB.
	MaxCompressed int64
	// MaxUncompressed bounds the sum of all file sizes. The decompressed tar
	// stream as a whole (headers, padding, PAX records included) is bounded by
	// MaxUncompressed plus 4 KiB per allowed entry plus 1 MiB, counted on the
	// bytes actually decompressed. Default: 512 MiB.
	MaxUncompressed int64
	// MaxFile bounds one file's size. Default: 64 MiB.
	MaxFile int64
	// MaxEntries bounds the number of tar entries (files and directories).
	// Default: 10 000.
	MaxEntries int
}

// DefaultLimits returns the §2.1 defaults: 64 MiB compressed, 512 MiB
// uncompressed, 64 MiB per file, 10 000 entries.
func DefaultLimits() Limits {
	return Limits{
		MaxCompressed:   64 << 20,
		MaxUncompressed: 512 << 20,
		MaxFile:         64 << 20,
		MaxEntries:      10000,
	}
}

// withDefaults replaces unset fields by their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCompressed <= 0 {
		l.MaxCompressed = d.MaxCompressed
	}
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = d.MaxUncompressed
	}
	if l.MaxFile <= 0 {
		l.MaxFile = d.MaxFile
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	return l
}

// streamBudget is the most decompressed tar bytes a reader consumes: file
// contents plus room for a header, a PAX/GNU long-name header and padding per
// entry, plus the end-of-archive blocks.
func (l Limits) streamBudget() int64 {
	return l.MaxUncompressed + int64(l.MaxEntries+1)*4096 + 1<<20
}

// CheckName applies the §2.1 name rules to one slash-separated entry name
// (without a directory's trailing slash) and returns a *RuleError
// (RuleNameInvalid or RuleNameHidden) or nil.
//
// A name is just bytes: "%2e%2e" is a literal three-segment-free name, not an
// encoded "..", so it stays inside the destination when extracted; decoding
// percent escapes is the job of URL routing (and must happen before a path
// reaches a bundle lookup). Rejected characters: NUL and every other Unicode
// control character (C0, DEL, C1), the line and paragraph separators, and
// the bidirectional formatting characters (which make names display as
// something they are not). Invalid UTF-8, including overlong encodings such as
// 0xC0 0xAF for "/", is rejected.
func CheckName(name string) error {
	invalid := func(msg string) error {
		return &RuleError{Rule: RuleNameInvalid, Name: name, Msg: msg}
	}
	switch {
	case name == "":
		return invalid("empty name")
	case len(name) > MaxNameLen:
		return invalid(fmt.Sprintf("name is %d bytes, longer than %d", len(name), MaxNameLen))
	case !utf8.ValidString(name):
		return invalid("name is not valid UTF-8")
	case name[0] == '/':
		return invalid("absolute name")
	}
	for _, r := range name {
		switch {
		case r == '\\':
			return invalid("backslash in name")
		case unicode.IsControl(r):
			return invalid(fmt.Sprintf("control character %U in name", r))
		case isDeceptiveFormat(r):
			return invalid(fmt.Sprintf("formatting character %U in name", r))
		}
	}
	segs := strings.Split(name, "/")
	for _, seg := range segs {
		switch seg {
		case "":
			return invalid("empty path segment")
		case ".", "..":
			return invalid(fmt.Sprintf("%q path segment", seg))
		}
	}
	for _, seg := range segs {
		if seg[0] == '.' {
			return &RuleError{Rule: RuleNameHidden, Name: name, Msg: fmt.Sprintf("hidden segment %q", seg)}
		}
	}
	return nil
}

// isDeceptiveFormat reports line/paragraph separators and bidi controls.
func isDeceptiveFormat(r rune) bool {
	switch {
	case r == 0x2028, r == 0x2029: // line, paragraph separator
		return true
	case r == 0x200E, r == 0x200F, r == 0x061C: // LRM, RLM, ALM
		return true
	case r >= 0x202A && r <= 0x202E: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// HashPrefix starts every content hash.
const HashPrefix = "sha256:"

// ValidHash reports whether s matches ^sha256:[0-9a-f]{64}$.
func ValidHash(s string) bool {
	if len(s) != len(HashPrefix)+64 || !strings.HasPrefix(s, HashPrefix) {
		return false
	}
	for i := len(HashPrefix); i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseHash accepts a content hash as written ("sha256:<hex>") or as it may
// arrive in a URL path segment ("sha256%3A<hex>", "sha256%3a<hex>") and
// returns the canonical form. Anything else, including upper-case hex, is an
// error.
func ParseHash(s string) (string, error) {
	for _, p := range []string{"sha256%3A", "sha256%3a"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			s = HashPrefix + rest
			break
		}
	}
	if !ValidHash(s) {
		shown := s
		if len(shown) > 80 {
			shown = shown[:80] + "…"
		}
		return "", fmt.Errorf("invalid content hash %q: want sha256: followed by 64 lowercase hex digits", shown)
	}
	return s, nil
}

// HashReader returns the content hash of everything r yields and its length.
func HashReader(r io.Reader) (hash string, n int64, err error) {
	h := sha256.New()
	n, err = io.Copy(h, r)
	if err != nil {
		return "", n, fmt.Errorf("hashing: %w", err)
	}
	return HashPrefix + hex.EncodeToString(h.Sum(nil)), n, nil
}

// HashFile returns the content hash and size of the file at path.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return HashReader(f)
}
