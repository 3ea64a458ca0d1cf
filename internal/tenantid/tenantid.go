// Package tenantid is the syntax of tenant ids (SPEC §15): opaque strings
// of [A-Za-z0-9._-], 1 to 64 bytes, so UUIDs qualify. Every component
// that takes a tenant id from outside (gateway auth, runnerd envelopes,
// registryd routes, tokens and records) checks it with Valid.
//
// Valid accepts tenant ids only. registryd's platform scope `*` (the
// row-level-security setting that reads across tenants) is not a tenant id
// and is refused here; code that means the platform scope says so by name
// at its call site.
package tenantid

// MaxLen is the longest tenant id, in bytes.
const MaxLen = 64

// Valid reports whether s is a tenant id.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
