package secretbox

// Secret names and sizes (SPEC §7.6), shared by registryd (which refuses a
// bad PUT …/secrets) and extctl (which refuses it before sending): a key is
// like an environment variable name, so SDKs can map secrets to them.
const (
	// MaxKeyLen is the longest secret key, in bytes.
	MaxKeyLen = 128
	// MaxValueSize bounds one secret value, in bytes.
	MaxValueSize = 64 << 10
	// KeyRule describes ValidKey for error messages.
	KeyRule = "[A-Za-z0-9_.-], at most 128 bytes"
)

// ValidKey reports whether k is a secret key: 1 to MaxKeyLen bytes of
// [A-Za-z0-9_.-].
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
