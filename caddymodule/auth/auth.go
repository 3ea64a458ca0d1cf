// Package auth authenticates gateway requests (SPEC §8.2 step 2): a session
// JWT from the Authorization header or a cookie, or a tenant header set by a
// trusted forward_auth in front of the gateway. It yields an Identity; the
// gateway maps its errors to 401 unauthenticated and 403 forbidden.
package auth

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"

	"github.com/extedge/extedge/internal/tenantid"
)

// ErrUnauthenticated means no usable credential was presented. The wrapped
// message is for logs only; clients get a fixed message.
var ErrUnauthenticated = errors.New("unauthenticated")

// Permissions checked by the gateway (claim `perms`).
const (
	PermRead  = "extension:read"
	PermWrite = "extension:write"
	PermDebug = "extension:debug"
)

// Identity is who is calling, as far as the gateway knows.
type Identity struct {
	// Tenant is the caller's tenant id (§15 syntax, already validated).
	Tenant string
	// Scoped reports that the token has an `ext` claim: it may then be
	// used only for the extensions in Extensions. A claim that is not a
	// non-empty string or an array of them scopes the token to none
	// (SPEC §8.2 step 2: a present claim is never ignored).
	Scoped     bool
	Extensions []string
	// Permissions is the `perms` claim (array of strings or a
	// space-separated string).
	Permissions []string
	// User fields from the claims sub, email, name and user_type.
	UserID, Email, Name, UserType string
	// ByCookie reports that the credential came from the session cookie,
	// which the browser attaches by itself: such a request may have been
	// forged by another site and needs the gateway's CSRF check.
	ByCookie bool
}

// MayUse reports whether the token may be used for extension ext.
func (id *Identity) MayUse(ext string) bool {
	return !id.Scoped || slices.Contains(id.Extensions, ext)
}

// Has reports whether the identity carries permission p.
func (id *Identity) Has(p string) bool { return slices.Contains(id.Permissions, p) }

// Authenticator turns a request into an Identity. Errors wrap
// ErrUnauthenticated.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}

// TrustedHeader takes the tenant from a request header that a trusted
// component in front of the gateway (Caddy's forward_auth with
// copy_headers) sets. forward_auth removes client-supplied copies of the
// headers it copies, so the value cannot come from the client as long as
// the site block routes every extedge request through forward_auth first;
// Caddyfile.example shows that layout. Identities from this mode carry no
// permissions and no user.
//
// With SecretHeader set, the trusted component must also send that header
// with Secret as its value: a request that reached the gateway some other
// way (a second listener, a misrouted site block) cannot then choose its
// tenant. The comparison takes constant time.
type TrustedHeader struct {
	Header string
	// SecretHeader names the header carrying Secret; "" means none.
	SecretHeader string
	Secret       []byte
}

// Authenticate implements Authenticator.
func (t TrustedHeader) Authenticate(r *http.Request) (*Identity, error) {
	if t.SecretHeader != "" {
		got := r.Header.Values(t.SecretHeader)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), t.Secret) != 1 {
			return nil, errorsJoin("missing or wrong trusted proxy secret")
		}
	}
	vals := r.Header.Values(t.Header)
	if len(vals) != 1 || !tenantid.Valid(vals[0]) {
		return nil, errorsJoin("missing or invalid trusted tenant header")
	}
	return &Identity{Tenant: vals[0]}, nil
}

func errorsJoin(msg string) error { return &authError{msg: msg} }

type authError struct{ msg string }

func (e *authError) Error() string { return "unauthenticated: " + e.msg }
func (e *authError) Unwrap() error { return ErrUnauthenticated }
