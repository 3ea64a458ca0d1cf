package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Resolver looks up host names; *net.Resolver implements it. Tests inject
// their own to make a name resolve to a private address without DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy is the platform's egress policy: the platform allowlist, the
// allow-private list and the resolver. It is immutable and safe for
// concurrent use.
type Policy struct {
	platform     []Entry
	allowPrivate []Entry
	resolver     Resolver
	dialer       net.Dialer
}

// NewPolicy builds a policy. A nil resolver is net.DefaultResolver.
func NewPolicy(platform, allowPrivate []Entry, r Resolver) *Policy {
	if r == nil {
		r = net.DefaultResolver
	}
	return &Policy{
		platform:     platform,
		allowPrivate: allowPrivate,
		resolver:     r,
		dialer:       net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
	}
}

// Check decides whether a target is allowed for an install: it must match
// the platform allowlist and, when the install has one, the install's.
func (p *Policy) Check(t Target, install []Entry) error {
	if !matchAny(p.platform, t) {
		return denied("%s://%s:%d is not in the platform egress allowlist", t.Scheme, t.Host, t.Port)
	}
	if len(install) > 0 && !matchAny(install, t) {
		return denied("%s://%s:%d is not in the install's egress allowlist", t.Scheme, t.Host, t.Port)
	}
	return nil
}

// Addresses resolves an allowed target and checks every answer: when the
// target is not in the allow-private list, a name with any blocked address
// is refused (a mixed answer is treated as hostile, not filtered).
func (p *Policy) Addresses(ctx context.Context, t Target) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if t.IP.IsValid() {
		addrs = []netip.Addr{t.IP}
	} else {
		found, err := p.resolver.LookupNetIP(ctx, "ip", t.Host)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", t.Host, err)
		}
		for _, a := range found {
			addrs = append(addrs, a.Unmap())
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolving %s: %w", t.Host, ErrNoAddress)
		}
	}
	if matchAny(p.allowPrivate, t) {
		return addrs, nil
	}
	for _, a := range addrs {
		if Blocked(a) {
			return nil, denied("%s resolves to %s, a private or special-purpose address", t.Host, a)
		}
	}
	return addrs, nil
}

type targetKey struct{}

// WithTarget attaches the checked target to a request context, for
// DialContext.
func WithTarget(ctx context.Context, t Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// DialContext is an http.Transport dialer that resolves and checks the
// address itself and connects to the checked IP. The request context must
// carry the target (WithTarget), which must match the dialed host and
// port; without it the dial is refused, so the transport cannot be used to
// reach anything unchecked.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t, ok := ctx.Value(targetKey{}).(Target)
	if !ok {
		return nil, denied("dial without a checked target")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if n, _ := strconv.Atoi(port); n != t.Port {
		return nil, denied("dial to port %s, checked %d", port, t.Port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	if host != t.Host && !(t.IP.IsValid() && host == t.IP.String()) {
		// The transport dials the URL's host; anything else is a bug.
		return nil, denied("dial to %s, checked %s", host, t.Host)
	}
	addrs, err := p.Addresses(ctx, t)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, a := range addrs {
		c, err := p.dialer.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(t.Port)).String())
		if err == nil {
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no address to dial")
	}
	return nil, lastErr
}
