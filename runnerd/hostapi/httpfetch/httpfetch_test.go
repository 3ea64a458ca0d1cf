package httpfetch

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// fakeResolver answers from a map so names can resolve to private
// addresses without DNS.
type fakeResolver map[string]string

func (f fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	a, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

type env struct {
	set      *hostapi.Set
	port     string // ":12345"
	gonePort string // a port nothing listens on
	redirect atomic.Int32
	target   atomic.Int32
}

func newEnv(t *testing.T, allowPrivateSelf bool, maxBody int64) *env {
	t.Helper()
	e := &env{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Vendor", "v1")
		b := make([]byte, 0, 64)
		if r.Body != nil {
			buf := make([]byte, 64)
			n, _ := r.Body.Read(buf)
			b = append(b, buf[:n]...)
		}
		w.WriteHeader(201)
		w.Write([]byte("got " + r.Method + " " + r.Header.Get("X-Api-Key") + " " + string(b)))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		e.redirect.Add(1)
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { e.target.Add(1) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 4096)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.port = strings.TrimPrefix(srv.URL, "http://127.0.0.1")
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := strings.TrimPrefix(closed.Addr().String(), "127.0.0.1")
	closed.Close()
	e.gonePort = closedPort

	resolver := fakeResolver{
		"vendor.test":          "127.0.0.1",
		"localhost":            "127.0.0.1",
		"internal.vendor.test": "10.0.0.8",
		"gone.test":            "127.0.0.1",
	}
	platform := []string{"http://vendor.test" + e.port, "vendor.test", "http://localhost" + e.port, "127.0.0.1",
		"http://127.0.0.1" + e.port, "169.254.169.254", "http://169.254.169.254", "internal.vendor.test", "http://gone.test" + closedPort}
	var allowPrivate []string
	if allowPrivateSelf {
		allowPrivate = []string{"http://vendor.test" + e.port, "http://gone.test" + closedPort}
	}
	pl, err := egress.ParseList(platform)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := egress.ParseList(allowPrivate)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Policy: egress.NewPolicy(pl, ap, resolver), MaxResponseBytes: maxBody})
	if err != nil {
		t.Fatal(err)
	}
	e.set, err = hostapi.NewSet(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) call(t *testing.T, req map[string]any, install []string, deadline time.Duration) (map[string]any, hostapi.Report) {
	t.Helper()
	b, _ := json.Marshal(req)
	inv := hostapi.NewInvocation(context.Background(), &execapi.Request{Capabilities: []string{"http.fetch"}, EgressAllowlist: install}, hostapi.Budgets{})
	defer inv.Begin(time.Now().Add(deadline))()
	bound := e.set.Imports()[0]
	out, status := e.set.CallJSON(inv, &bound, b)
	report := inv.Finish()
	var reply map[string]any
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatal(err)
	}
	if (status == 1) != (reply["error"] != nil) {
		t.Fatalf("status %d does not agree with reply %s", status, out)
	}
	return reply, report
}

func codeOf(reply map[string]any) string {
	e, _ := reply["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestEgressRules(t *testing.T) {
	e := newEnv(t, true, 1024)
	tests := []struct {
		name    string
		url     string
		install []string
		code    string
	}{
		{"allow-private entry to a local test server succeeds", "http://vendor.test" + e.port + "/ok", nil, ""},
		{"ip literal is denied unless listed literally", "http://127.0.0.2" + e.port + "/ok", nil, egress.CodeDenied},
		{"listed loopback literal is still denied without allow-private", "http://127.0.0.1" + e.port + "/ok", nil, egress.CodeDenied},
		{"localhost is denied", "http://localhost" + e.port + "/ok", nil, egress.CodeDenied},
		{"metadata address is denied", "http://169.254.169.254/latest/meta-data/", nil, egress.CodeDenied},
		{"hostname resolving to a private address is denied", "https://internal.vendor.test/", nil, egress.CodeDenied},
		{"plain http to an https-only entry is denied", "http://vendor.test/ok", nil, egress.CodeDenied},
		{"wrong port is denied", "http://vendor.test:1" + "/ok", nil, egress.CodeDenied},
		{"host outside the allowlist is denied", "https://example.org/", nil, egress.CodeDenied},
		{"install allowlist narrows the platform list", "http://vendor.test" + e.port + "/ok", []string{"billing.example.com"}, egress.CodeDenied},
		{"bad url is invalid_url", "vendor.test/ok", nil, egress.CodeInvalidURL},
		{"non-http scheme is invalid_url", "file:///etc/passwd", nil, egress.CodeInvalidURL},
		{"response body over the cap is too_large", "http://vendor.test" + e.port + "/big", nil, CodeTooLarge},
		{"connection refused is transport", "http://gone.test" + e.gonePort, nil, CodeTransport},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, _ := e.call(t, map[string]any{"url": tt.url}, tt.install, 2*time.Second)
			if got := codeOf(reply); got != tt.code {
				t.Fatalf("code %q, want %q (reply %v)", got, tt.code, reply)
			}
		})
	}
}

func TestFetchSuccess(t *testing.T) {
	e := newEnv(t, true, 0)
	reply, report := e.call(t, map[string]any{"url": "http://vendor.test" + e.port + "/ok", "method": "post",
		"headers": map[string]string{"X-Api-Key": "k1", "Host": "evil.example"}, "body_b64": "cGluZw=="}, nil, 2*time.Second)
	if codeOf(reply) != "" {
		t.Fatalf("reply %v", reply)
	}
	if reply["status"].(float64) != 201 {
		t.Fatalf("status %v", reply["status"])
	}
	if h := reply["headers"].(map[string]any); h["x-vendor"] != "v1" {
		t.Fatalf("headers %v", h)
	}
	body := reply["body_b64"].(string)
	if body != "Z290IFBPU1QgazEgcGluZw==" { // "got POST k1 ping"
		t.Fatalf("body_b64 %q", body)
	}
	if report.EgressBytes != int64(len("ping")+len("got POST k1 ping")) {
		t.Fatalf("egress bytes %d", report.EgressBytes)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	e := newEnv(t, true, 0)
	reply, _ := e.call(t, map[string]any{"url": "http://vendor.test" + e.port + "/redirect"}, nil, 2*time.Second)
	if reply["status"].(float64) != 302 || reply["headers"].(map[string]any)["location"] != "/target" {
		t.Fatalf("reply %v, want the 302 itself", reply)
	}
	if e.redirect.Load() != 1 || e.target.Load() != 0 {
		t.Fatalf("redirect hits %d, target hits %d: the redirect was followed", e.redirect.Load(), e.target.Load())
	}
}

func TestTimeoutIsBoundedByTheInvocation(t *testing.T) {
	e := newEnv(t, true, 0)
	start := time.Now()
	reply, _ := e.call(t, map[string]any{"url": "http://vendor.test" + e.port + "/slow"}, nil, 200*time.Millisecond)
	if codeOf(reply) != CodeTimeout {
		t.Fatalf("reply %v, want timeout", reply)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("fetch took %v past a 200ms invocation deadline", el)
	}
	reply, _ = e.call(t, map[string]any{"url": "http://vendor.test" + e.port + "/slow", "timeout_ms": 100}, nil, 5*time.Second)
	if codeOf(reply) != CodeTimeout {
		t.Fatalf("reply %v, want timeout from timeout_ms", reply)
	}
}

func TestAllowPrivateIsRequiredForLocalServers(t *testing.T) {
	e := newEnv(t, false, 0)
	reply, _ := e.call(t, map[string]any{"url": "http://vendor.test" + e.port + "/ok"}, nil, 2*time.Second)
	if codeOf(reply) != egress.CodeDenied {
		t.Fatalf("reply %v, want egress_denied without allow-private", reply)
	}
}

func TestMalformedRequestIsRefused(t *testing.T) {
	e := newEnv(t, true, 0)
	for _, raw := range []string{`{"url":1}`, `not json`, `{"url":"http://x","bogus":1}`} {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{Capabilities: []string{"http.fetch"}}, hostapi.Budgets{})
		b := e.set.Imports()[0]
		out, st := e.set.CallJSON(inv, &b, []byte(raw))
		if st != 1 || !strings.Contains(string(out), hostapi.CodeInvalidRequest) {
			t.Errorf("%s: %d %s", raw, st, out)
		}
	}
}

// TestFetchFromWasm runs http.fetch from a WAT guest through the engine:
// granted, it reaches the local server; not granted, the guest gets
// capability_denied and still answers.
func TestFetchFromWasm(t *testing.T) {
	e := newEnv(t, true, 0)
	eng, err := engine.New(engine.Config{}, e.set)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	req := `{"url":"http://vendor.test` + e.port + `/ok"}`
	m, err := eng.Compile(guests.HostCall(t, "http.fetch", req))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		caps []string
		want string
	}{
		{"granted fetch reaches the server", []string{"http.fetch"}, `[0,{"status":201`},
		{"missing grant is capability_denied", nil, `[1,{"error":{"code":"capability_denied"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inv := hostapi.NewInvocation(context.Background(), &execapi.Request{Capabilities: tt.caps}, hostapi.Budgets{})
			res, err := eng.Run(context.Background(), m, "handler", []byte(`{}`), engine.Limits{}, inv)
			if err != nil {
				t.Fatal(err)
			}
			if granted := tt.caps != nil; granted != (res.Host.EgressBytes > 0) {
				t.Fatalf("egress bytes %d reported for granted=%v", res.Host.EgressBytes, granted)
			}
			if !strings.HasPrefix(string(res.Response.Body), tt.want) {
				t.Fatalf("guest reply %s, want prefix %s", res.Response.Body, tt.want)
			}
		})
	}
}

// TestHTTPSGoesToTheCheckedAddress fetches over TLS from a name that
// resolves (through the test resolver) to a local TLS server: the
// certificate is checked against the URL's host while the connection goes
// to the checked address.
func TestHTTPSGoesToTheCheckedAddress(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("tls ok"))
	}))
	defer srv.Close()
	port := strings.TrimPrefix(srv.URL, "https://127.0.0.1")
	// httptest's certificate is valid for example.com.
	list, _ := egress.ParseList([]string{"example.com" + port})
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c, err := New(Config{Policy: egress.NewPolicy(list, list, fakeResolver{"example.com": "127.0.0.1"}), TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := hostapi.NewSet(c)
	e := &env{set: set}
	reply, _ := e.call(t, map[string]any{"url": "https://example.com" + port + "/"}, nil, 2*time.Second)
	if codeOf(reply) != "" || reply["body_b64"] != "dGxzIG9r" {
		t.Fatalf("reply %v", reply)
	}
	// The same server under a name its certificate does not cover fails
	// the TLS check: the host name, not the dialed IP, is verified.
	list2, _ := egress.ParseList([]string{"other.test" + port})
	c2, _ := New(Config{Policy: egress.NewPolicy(list2, list2, fakeResolver{"other.test": "127.0.0.1"}), TLS: tlsCfg})
	set2, _ := hostapi.NewSet(c2)
	reply, _ = (&env{set: set2}).call(t, map[string]any{"url": "https://other.test" + port + "/"}, nil, 2*time.Second)
	if codeOf(reply) != CodeTransport {
		t.Fatalf("reply %v, want a transport (TLS) failure", reply)
	}
}
