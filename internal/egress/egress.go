// Package egress is the outbound network policy of guest code (SPEC §5.3):
// allowlist entries and their matching rules, the DNS answer check against
// private and special-purpose ranges, and a dialer that connects to exactly
// the address that was checked, so a hostname cannot be re-resolved to
// something else between check and connect (DNS rebinding).
//
// Entry syntax is `[http://]host[:port]`:
//   - `example.com` matches example.com and every subdomain; `*.example.com`
//     matches subdomains only;
//   - without `http://` only https is allowed; with it only http;
//   - without `:port` only the scheme's default port (443 or 80);
//   - an IP literal (`10.0.0.5`, `[fd00::1]:8443`) matches only that exact
//     address written as an IP literal in the URL; domain entries never
//     match IP-literal URLs.
//
// Choices where SPEC §5.3 is silent: hosts compare case-insensitively and
// without a trailing dot; an install allowlist that is empty means the
// install adds no restriction of its own (the platform list still
// applies); an entry is "also in --egress-allow-private" when the URL
// matches an entry of that list by the same rules.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Error codes reported to guests (SPEC §5.3).
const (
	CodeDenied     = "egress_denied"
	CodeInvalidURL = "invalid_url"
)

// Error is a policy decision against a URL.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func denied(format string, args ...any) *Error {
	return &Error{Code: CodeDenied, Message: fmt.Sprintf(format, args...)}
}

// Entry is one parsed allowlist entry.
type Entry struct {
	// Scheme is "https" or "http".
	Scheme string
	// Host is the lowercase host name without a trailing dot, or the
	// canonical text of an IP literal.
	Host string
	// Wildcard is set for `*.host`: subdomains only.
	Wildcard bool
	// IP is set when the entry is an IP literal.
	IP netip.Addr
	// Port is the only allowed port.
	Port int
	raw  string
}

func (e Entry) String() string { return e.raw }

// ParseEntry parses one `[http://]host[:port]` entry.
func ParseEntry(s string) (Entry, error) {
	raw := strings.TrimSpace(s)
	e := Entry{Scheme: "https", Port: 443, raw: raw}
	rest := raw
	if r, ok := cutPrefixFold(rest, "http://"); ok {
		e.Scheme, e.Port, rest = "http", 80, r
	} else if strings.Contains(rest, "://") {
		return Entry{}, fmt.Errorf("egress entry %q: only http:// may prefix a host", raw)
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return Entry{}, fmt.Errorf("egress entry %q: want [http://]host[:port]", raw)
	}
	host := rest
	if h, p, err := net.SplitHostPort(rest); err == nil {
		port, perr := strconv.Atoi(p)
		if perr != nil || port < 1 || port > 65535 {
			return Entry{}, fmt.Errorf("egress entry %q: bad port", raw)
		}
		host, e.Port = h, port
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	} else if strings.Count(rest, ":") == 1 {
		return Entry{}, fmt.Errorf("egress entry %q: bad port", raw)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Entry{}, fmt.Errorf("egress entry %q: zoned addresses are not allowed", raw)
		}
		e.IP, e.Host = ip.Unmap(), ip.Unmap().String()
		return e, nil
	}
	if w, ok := strings.CutPrefix(host, "*."); ok {
		e.Wildcard, host = true, w
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if !validHostname(host) {
		return Entry{}, fmt.Errorf("egress entry %q: %q is not a valid host name", raw, host)
	}
	e.Host = host
	return e, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseList parses entries, skipping empty ones; the first bad entry is an
// error.
func ParseList(entries []string) ([]Entry, error) {
	var out []Entry
	for _, s := range entries {
		if strings.TrimSpace(s) == "" {
			continue
		}
		e, err := ParseEntry(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseCSV parses a comma-separated list (the flag and env form).
func ParseCSV(s string) ([]Entry, error) { return ParseList(strings.Split(s, ",")) }

// Target is a URL reduced to what the policy decides on.
type Target struct {
	Scheme string
	Host   string     // lowercase, no trailing dot, or canonical IP text
	IP     netip.Addr // valid when the URL host is an IP literal
	Port   int
}

// ParseTarget validates a fetch URL: absolute http or https, a host, no
// user info. Anything else is invalid_url.
func ParseTarget(raw string) (*url.URL, Target, error) {
	bad := func(msg string) (*url.URL, Target, error) {
		return nil, Target{}, &Error{Code: CodeInvalidURL, Message: msg}
	}
	if len(raw) > 8192 {
		return bad("url is longer than 8192 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("url does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return bad("url scheme must be http or https")
	}
	if u.User != nil {
		return bad("url must not contain user info")
	}
	host := u.Hostname()
	if host == "" {
		return bad("url has no host")
	}
	t := Target{Scheme: scheme, Port: 443}
	if scheme == "http" {
		t.Port = 80
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("url port is not 1-65535")
		}
		t.Port = n
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return bad("zoned addresses are not allowed")
		}
		t.IP, t.Host = ip.Unmap(), ip.Unmap().String()
	} else {
		t.Host = strings.TrimSuffix(strings.ToLower(host), ".")
		if !validHostname(t.Host) {
			return bad("url host is not a valid host name")
		}
	}
	// The URL the transport dials carries the canonical host, so the
	// dialer sees exactly the host that was checked ("HTTPS://VENDOR.TEST"
	// and "vendor.test." included).
	u.Scheme = scheme
	switch {
	case u.Port() != "":
		u.Host = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	case t.IP.Is6():
		u.Host = "[" + t.Host + "]"
	default:
		u.Host = t.Host
	}
	return u, t, nil
}

// Matches reports whether the entry allows the target.
func (e Entry) Matches(t Target) bool {
	if e.Scheme != t.Scheme || e.Port != t.Port {
		return false
	}
	if e.IP.IsValid() || t.IP.IsValid() {
		return e.IP.IsValid() && t.IP.IsValid() && e.IP == t.IP
	}
	if t.Host == e.Host {
		return !e.Wildcard
	}
	return strings.HasSuffix(t.Host, "."+e.Host)
}

func matchAny(list []Entry, t Target) bool {
	for _, e := range list {
		if e.Matches(t) {
			return true
		}
	}
	return false
}

// blockedPrefixes are the ranges a guest may not reach unless the entry is
// also in the allow-private list: loopback, RFC 1918 private, link-local
// (incl. the 169.254.169.254 metadata service), unique-local, unspecified,
// multicast, CGNAT, and a few other special-purpose ranges that never
// belong to a public API.
var blockedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",      // "this network", incl. unspecified
		"10.0.0.0/8",     // private
		"100.64.0.0/10",  // CGNAT
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local, cloud metadata
		"172.16.0.0/12",  // private
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // private
		"198.18.0.0/15",  // benchmarking
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, incl. broadcast
		"192.88.99.0/24", // 6to4 relay anycast
		"::/96",          // IPv4-compatible (deprecated), incl. :: and ::1
		"::1/128",        // loopback
		"64:ff9b::/96",   // NAT64 can reach IPv4 private space
		"64:ff9b:1::/48", // local-use NAT64
		"100::/64",       // discard
		"2001::/32",      // Teredo tunnels to any IPv4
		"2001:db8::/32",  // documentation
		"2002::/16",      // 6to4 tunnels to any IPv4
		"fc00::/7",       // unique-local
		"fe80::/10",      // link-local
		"fec0::/10",      // old site-local
		"ff00::/8",       // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Blocked reports whether ip is in a range guests may not reach by default.
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrNoAddress is returned when a name resolves to nothing usable.
var ErrNoAddress = errors.New("host resolves to no address")
