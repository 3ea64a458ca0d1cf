package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustList(t *testing.T, s ...string) []Entry {
	t.Helper()
	l, err := ParseList(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func target(t *testing.T, raw string) Target {
	t.Helper()
	_, tg, err := ParseTarget(raw)
	if err != nil {
		t.Fatalf("ParseTarget(%q): %v", raw, err)
	}
	return tg
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"bare host is accepted", "api.vendor.com", true},
		{"host with port is accepted", "api.vendor.com:8443", true},
		{"http prefix is accepted", "http://legacy.vendor.com", true},
		{"wildcard is accepted", "*.vendor.com", true},
		{"ipv4 literal is accepted", "203.0.113.7", true},
		{"bracketed ipv6 with port is accepted", "[2001:db8::1]:8443", true},
		{"bracketed ipv6 without port is accepted", "[2001:db8::1]", true},
		{"https prefix is refused (https is the default)", "https://api.vendor.com", false},
		{"other scheme is refused", "ftp://vendor.com", false},
		{"path is refused", "vendor.com/api", false},
		{"user info is refused", "user@vendor.com", false},
		{"port zero is refused", "vendor.com:0", false},
		{"port out of range is refused", "vendor.com:70000", false},
		{"empty port is refused", "vendor.com:", false},
		{"bad label is refused", "-bad.com", false},
		{"empty label is refused", "a..com", false},
		{"inner wildcard is refused", "a.*.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEntry(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseEntry(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestEntryMatching(t *testing.T) {
	tests := []struct {
		name  string
		entry string
		url   string
		match bool
	}{
		{"host matches itself", "example.com", "https://example.com/x", true},
		{"host matches its subdomains", "example.com", "https://api.eu.example.com/x", true},
		{"host does not match a lookalike suffix", "example.com", "https://badexample.com/", false},
		{"wildcard matches subdomains", "*.example.com", "https://api.example.com/", true},
		{"wildcard does not match the apex", "*.example.com", "https://example.com/", false},
		{"host comparison ignores case and trailing dot", "Example.COM", "https://API.example.com./", true},
		{"without http:// plain http is refused", "example.com", "http://example.com/", false},
		{"with http:// https is refused", "http://example.com", "https://example.com/", false},
		{"with http:// plain http on port 80 matches", "http://example.com", "http://example.com/", true},
		{"without a port only the default port matches", "example.com", "https://example.com:8443/", false},
		{"explicit default port matches an entry without port", "example.com", "https://example.com:443/", true},
		{"entry port must equal the url port", "example.com:8443", "https://example.com:8443/", true},
		{"entry port refuses the default port", "example.com:8443", "https://example.com/", false},
		{"ip literal url needs a literal entry", "example.com", "https://93.184.216.34/", false},
		{"ip literal entry matches that literal", "93.184.216.34", "https://93.184.216.34/", true},
		{"ip literal entry does not match another ip", "93.184.216.34", "https://93.184.216.35/", false},
		{"ipv6 literal entry matches", "[2606:4700::1]", "https://[2606:4700::1]/", true},
		{"ipv4-mapped ipv6 url matches the ipv4 entry", "93.184.216.34", "https://[::ffff:93.184.216.34]/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEntry(tt.entry)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Matches(target(t, tt.url)); got != tt.match {
				t.Fatalf("%q matches %q = %v, want %v", tt.entry, tt.url, got, tt.match)
			}
		})
	}
}

func TestParseTargetRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{"", "not a url", "ftp://x.com/", "https://", "https://user:pw@x.com/", "https://x.com:99999/", "//x.com/", "file:///etc/passwd", "https://[fe80::1%25eth0]/"} {
		_, _, err := ParseTarget(raw)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidURL {
			t.Errorf("ParseTarget(%q) = %v, want invalid_url", raw, err)
		}
	}
}

func TestBlockedRanges(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
		// special-purpose ranges that tunnel to or embed IPv4, or are never public
		"::127.0.0.1", "::10.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::1", "2001:0:4136:e378::1",
		"192.88.99.1", "198.18.0.1", "198.19.255.255", "240.0.0.1", "0.1.2.3"} {
		if !Blocked(netip.MustParseAddr(s)) {
			t.Errorf("%s is not blocked", s)
		}
	}
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111"} {
		if Blocked(netip.MustParseAddr(s)) {
			t.Errorf("public %s is blocked", s)
		}
	}
}

// fakeResolver answers from a map, so tests can make a public-looking name
// resolve to a private address without touching DNS.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	ans, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range ans {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestPolicy(t *testing.T) {
	r := fakeResolver{
		"api.vendor.com":   {"93.184.216.34"},
		"evil.vendor.com":  {"10.0.0.5"},
		"mixed.vendor.com": {"93.184.216.34", "127.0.0.1"},
		"meta.vendor.com":  {"169.254.169.254"},
		"onprem.corp":      {"10.1.1.1"},
	}
	p := NewPolicy(mustList(t, "vendor.com", "onprem.corp", "127.0.0.1", "169.254.169.254"), mustList(t, "onprem.corp"), r)
	ctx := context.Background()
	tests := []struct {
		name    string
		url     string
		install []string
		code    string
	}{
		{"allowed public host passes", "https://api.vendor.com/x", nil, ""},
		{"host outside the platform list is denied", "https://other.com/", nil, CodeDenied},
		{"install list narrows the platform list", "https://api.vendor.com/", []string{"billing.vendor.com"}, CodeDenied},
		{"host in both lists passes", "https://api.vendor.com/", []string{"api.vendor.com"}, ""},
		{"install list cannot widen the platform list", "https://other.com/", []string{"other.com"}, CodeDenied},
		{"name resolving to a private address is denied", "https://evil.vendor.com/", nil, CodeDenied},
		{"answer with any loopback address is denied", "https://mixed.vendor.com/", nil, CodeDenied},
		{"name resolving to the metadata service is denied", "https://meta.vendor.com/", nil, CodeDenied},
		{"loopback literal is denied even when listed", "https://127.0.0.1/", nil, CodeDenied},
		{"metadata literal is denied even when listed", "https://169.254.169.254/", nil, CodeDenied},
		{"unlisted ip literal is denied", "https://93.184.216.34/", nil, CodeDenied},
		{"allow-private entry reaches a private address", "https://onprem.corp/", nil, ""},
		{"plain http to an https entry is denied", "http://api.vendor.com/", nil, CodeDenied},
		{"wrong port is denied", "https://api.vendor.com:8080/", nil, CodeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := target(t, tt.url)
			err := p.Check(tg, mustList(t, tt.install...))
			if err == nil {
				_, err = p.Addresses(ctx, tg)
			}
			if got := code(err); got != tt.code {
				t.Fatalf("got %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

func TestDialConnectsToTheCheckedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hi from " + r.Host))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	portStr := strings.TrimPrefix(srv.URL, "http://127.0.0.1")
	// vendor.test resolves to loopback; only the allow-private entry lets
	// the dial through, and it connects to the address that was checked.
	r := fakeResolver{"vendor.test": {"127.0.0.1"}}
	entry := "http://vendor.test" + portStr
	client := func(p *Policy) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: p.DialContext, Proxy: nil}}
	}
	get := func(p *Policy, raw string) (string, error) {
		u, tg, err := ParseTarget(raw)
		if err != nil {
			return "", err
		}
		req, _ := http.NewRequestWithContext(WithTarget(context.Background(), tg), "GET", u.String(), nil)
		resp, err := client(p).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		buf := make([]byte, 100)
		n, _ := resp.Body.Read(buf)
		return string(buf[:n]), nil
	}
	allowed := NewPolicy(mustList(t, entry), mustList(t, entry), r)
	body, err := get(allowed, "http://vendor.test"+portStr+"/")
	if err != nil || body != "hi from vendor.test"+portStr {
		t.Fatalf("allow-private dial: %q %v (port %d)", body, err, port)
	}
	// The policy checks the canonical host, and the dial uses it too.
	for _, raw := range []string{"HTTP://VENDOR.TEST" + portStr + "/", "http://vendor.test." + portStr + "/", "http://Vendor.Test." + portStr + "/x?y=1"} {
		if body, err := get(allowed, raw); err != nil || body != "hi from vendor.test"+portStr {
			t.Fatalf("%s: %q %v, want the same answer as the canonical host", raw, body, err)
		}
	}
	refused := NewPolicy(mustList(t, entry), nil, r)
	if _, err := get(refused, "http://vendor.test"+portStr+"/"); code(err) != CodeDenied {
		t.Fatalf("loopback dial without allow-private: %v", err)
	}
	// A request without a checked target cannot dial at all.
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if _, err := client(allowed).Do(req); code(err) != CodeDenied {
		t.Fatalf("unchecked dial: %v", err)
	}
}
