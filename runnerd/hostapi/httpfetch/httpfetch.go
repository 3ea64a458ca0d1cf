// Package httpfetch is the http.fetch capability (SPEC §5.2, §5.3):
// outbound HTTP for guests behind the egress policy of internal/egress.
// It asks the policy whether a URL is allowed and lets the policy's dialer
// connect to the checked address; it never follows redirects, caps the
// response body, bounds the request by the invocation's remaining time and
// counts egress bytes.
package httpfetch

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/extedge/extedge/internal/egress"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// Error codes of http.fetch besides the policy's egress_denied and
// invalid_url.
const (
	CodeTimeout   = "timeout"
	CodeTransport = "transport"
	CodeTooLarge  = "too_large"
)

// Config configures the capability.
type Config struct {
	// Policy is the platform egress policy. Required.
	Policy *egress.Policy
	// MaxResponseBytes caps the response body. Default: 5 MiB.
	MaxResponseBytes int64
	// MaxRequestBytes caps the request body. Default: 5 MiB.
	MaxRequestBytes int
	// TLS configures outbound TLS (e.g. an on-prem CA); nil means the
	// system roots.
	TLS *tls.Config
}

// Capability provides http.fetch.
type Capability struct {
	cfg    Config
	client *http.Client
}

// New builds the capability with one shared transport whose dialer is the
// policy's (the connection pool is keyed by scheme, host and port, and the
// policy decides the same way for the same key).
func New(cfg Config) (*Capability, error) {
	if cfg.Policy == nil {
		return nil, errors.New("http.fetch needs an egress policy")
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 5 << 20
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 5 << 20
	}
	tr := &http.Transport{
		Proxy:                 nil, // never an environment proxy: it would bypass the address check
		DialContext:           cfg.Policy.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by the invocation deadline
		TLSClientConfig:       cfg.TLS,
	}
	return &Capability{cfg: cfg, client: &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the guest sees the 3xx
		},
	}}, nil
}

// Capability implements hostapi.Unit.
func (c *Capability) Capability() string { return "http.fetch" }

// Imports implements hostapi.Unit.
func (c *Capability) Imports() []hostapi.Import {
	return []hostapi.Import{{Name: "http.fetch", JSON: hostapi.JSONFunc(c.fetch)}}
}

// call is the unit's state of one call: the install's allowlist, parsed
// once, and the egress bytes counted so far.
type call struct {
	install     []egress.Entry
	installErr  error
	egressBytes int64
}

// Prepare implements hostapi.Unit. An invalid install allowlist does not
// fail the prepare step: every fetch of the call is egress_denied instead.
func (c *Capability) Prepare(info hostapi.CallInfo) (hostapi.State, error) {
	install, err := egress.ParseList(info.EgressAllowlist)
	return &call{install: install, installErr: err}, nil
}

// Finish implements hostapi.Unit: it reports the egress bytes.
func (c *Capability) Finish(st hostapi.State, r *hostapi.Report) {
	r.EgressBytes += st.(*call).egressBytes
}

// Request is the guest's http.fetch request.
type Request struct {
	URL       string            `json:"url"`
	Method    string            `json:"method,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      []byte            `json:"body_b64,omitempty"`
	TimeoutMS int               `json:"timeout_ms,omitempty"`
}

// Reply is the http.fetch reply.
type Reply struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body_b64"`
}

// forbiddenHeaders are request headers the guest may not set: the
// transport owns framing and connection management.
var forbiddenHeaders = map[string]bool{
	"host": true, "connection": true, "content-length": true, "transfer-encoding": true,
	"keep-alive": true, "proxy-connection": true, "proxy-authorization": true, "te": true,
	"trailer": true, "upgrade": true,
}

func (c *Capability) fetch(ctx context.Context, st *call, raw []byte) (any, error) {
	var req Request
	if err := hostapi.DecodeRequest(raw, &req); err != nil {
		return nil, err
	}
	u, target, err := egress.ParseTarget(req.URL)
	if err != nil {
		return nil, policyErr(err)
	}
	if st.installErr != nil {
		return nil, hostapi.Errorf(egress.CodeDenied, "the install's egress allowlist is invalid")
	}
	if err := c.cfg.Policy.Check(target, st.install); err != nil {
		return nil, policyErr(err)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "method %q is not a token", req.Method)
	}
	if len(req.Body) > c.cfg.MaxRequestBytes {
		return nil, hostapi.Errorf(CodeTooLarge, "request body over %d bytes", c.cfg.MaxRequestBytes)
	}

	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	ctx = egress.WithTarget(ctx, target)
	var body io.Reader
	if req.Body != nil {
		body = strings.NewReader(string(req.Body))
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, hostapi.Errorf(egress.CodeInvalidURL, "url cannot be requested")
	}
	for k, v := range req.Headers {
		lk := strings.ToLower(k)
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return nil, hostapi.Errorf(hostapi.CodeInvalidRequest, "header %q is not valid", k)
		}
		if forbiddenHeaders[lk] {
			continue
		}
		hreq.Header.Set(k, v)
	}
	st.egressBytes += int64(len(req.Body))
	resp, err := c.client.Do(hreq)
	if err != nil {
		return nil, transportErr(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	st.egressBytes += int64(len(data))
	if err != nil {
		return nil, transportErr(ctx, err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, hostapi.Errorf(CodeTooLarge, "response body over %d bytes", c.cfg.MaxResponseBytes)
	}
	reply := Reply{Status: resp.StatusCode, Headers: map[string]string{}, Body: data}
	for k, vs := range resp.Header {
		reply.Headers[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	return reply, nil
}

func policyErr(err error) error {
	var pe *egress.Error
	if errors.As(err, &pe) {
		return &hostapi.Error{Code: pe.Code, Message: pe.Message}
	}
	return hostapi.Errorf(CodeTransport, "request failed")
}

// transportErr classifies a failed round trip. Policy refusals from the
// dialer (private DNS answers) keep their egress_denied code.
func transportErr(ctx context.Context, err error) error {
	var pe *egress.Error
	if errors.As(err, &pe) {
		return &hostapi.Error{Code: pe.Code, Message: pe.Message}
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return hostapi.Errorf(CodeTimeout, "request did not finish before the deadline")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return hostapi.Errorf(CodeTimeout, "request timed out")
	}
	return hostapi.Errorf(CodeTransport, "request failed: %s", transportReason(err))
}

// transportReason names the failure without addresses or internals.
func transportReason(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "no such host"), errors.Is(err, egress.ErrNoAddress):
		return "host not found"
	case strings.Contains(s, "certificate"), strings.Contains(s, "tls"):
		return "tls handshake failed"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	}
	return "network error"
}

var _ hostapi.Unit = (*Capability)(nil)
