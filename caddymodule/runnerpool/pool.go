// Package runnerpool sends execute envelopes to runnerd processes (SPEC
// §8.2 step 9). Runners are reached over Unix sockets or TCP with
// keep-alive connection pools. A call goes to the runners in rendezvous
// order of the content hash, so each bundle's compiled modules stay warm on
// one runner; the next runner is tried only when the request never reached
// the previous one or it answered concurrency_limited. Passive health marks
// a runner that refused a connection down for FailDuration; active health
// probes /readyz every HealthInterval once the pool is in use. Each
// tenant's calls in flight are capped across all runners (SPEC §17, see
// Pool.Execute).
package runnerpool

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/lowprio"
)

// Config configures a Pool.
type Config struct {
	// Addresses of the runners: `unix//abs/path.sock`, `unix:///abs/path.sock`,
	// `tcp://host:port` or `host:port`.
	Addresses []string
	// Token returns the runner bearer token; it is called per request
	// (callers cache). Nil sends no token.
	Token func() (string, error)
	// TLS, when set, is used for TCP runners (HTTPS); Unix sockets stay
	// plain. Nil: plain HTTP everywhere.
	TLS *tls.Config
	// HealthInterval is the period of active /readyz probes. Default 5s.
	HealthInterval time.Duration
	// FailDuration is how long a runner that refused a connection or failed
	// a probe stays marked down. Default 5s.
	FailDuration time.Duration
	// MaxIdleConns is the keep-alive pool size per runner. Default 256.
	MaxIdleConns int
	// TenantConcurrency caps one tenant's calls in flight across all
	// runners of the pool (SPEC §17); SetTenantLimits changes it later.
	// Default (0 or less): 2 × the number of runners.
	TenantConcurrency int
	// TenantQueue is how many of a tenant's calls over its cap may wait
	// for one of its slots, each at most TenantQueueWait (and never past
	// its context's deadline). Zero means as many as the cap, a negative
	// value none; a TenantQueueWait of zero (the default) also turns the
	// queue off, so a call over the cap is refused at once.
	TenantQueue     int
	TenantQueueWait time.Duration
	// TenantCostBytes weighs calls by their install's recent response
	// sizes: a call holds 1 + mean/TenantCostBytes units of its tenant's
	// TenantConcurrency (callCosts); SetTenantCostBytes changes it later.
	// Zero means DefaultTenantCostBytes, negative that every call weighs 1.
	TenantCostBytes int64
	// Logger may be nil.
	Logger *zap.Logger
}

// Pool is a set of runners. It is safe for concurrent use; it dials
// nothing until the first Execute.
type Pool struct {
	cfg     Config
	runners []*Runner
	logger  *zap.Logger
	tenants tenantSlots
	costs   *callCosts

	startOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
}

// Runner is one runnerd endpoint and its health.
type Runner struct {
	// Address is the configured address.
	Address string
	base    string
	client  *http.Client
	seed    uint64

	downUntil atomic.Int64 // unix nanos; 0 = not down
	markedAt  atomic.Int64 // unix nanos of the last passive mark
	probeOK   atomic.Bool  // last active probe result (true before any probe)
	inflight  atomic.Int64
	requests  atomic.Int64
	failures  atomic.Int64
}

// Status is a runner's state for the admin API and metrics.
type Status struct {
	Address  string `json:"address"`
	Healthy  bool   `json:"healthy"`
	InFlight int64  `json:"in_flight"`
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
}

// New checks cfg and builds the pool. It does no I/O.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("runnerpool: no runner addresses")
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	if cfg.FailDuration <= 0 {
		cfg.FailDuration = 5 * time.Second
	}
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 256
	}
	p := &Pool{cfg: cfg, logger: cfg.Logger}
	if p.logger == nil {
		p.logger = zap.NewNop()
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, a := range cfg.Addresses {
		r, err := newRunner(a, cfg.MaxIdleConns)
		if err != nil {
			return nil, err
		}
		network, addr, _ := ParseAddress(a)
		r.useTLS(network, addr, cfg.TLS)
		p.runners = append(p.runners, r)
	}
	p.costs = newCallCosts()
	p.SetTenantLimits(cfg.TenantConcurrency, cfg.TenantQueue, cfg.TenantQueueWait)
	p.SetTenantCostBytes(cfg.TenantCostBytes)
	return p, nil
}

// ParseAddress splits a runner address into a network and an address.
func ParseAddress(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "unix//"):
		network, addr = "unix", a[len("unix/"):]
	case strings.HasPrefix(a, "unix://"):
		network, addr = "unix", a[len("unix://"):]
	case strings.HasPrefix(a, "unix:"):
		network, addr = "unix", a[len("unix:"):]
	case strings.HasPrefix(a, "tcp://"):
		network, addr = "tcp", a[len("tcp://"):]
	case strings.HasPrefix(a, "http://"):
		network, addr = "tcp", strings.TrimSuffix(a[len("http://"):], "/")
	default:
		network, addr = "tcp", a
	}
	if network == "unix" && !strings.HasPrefix(addr, "/") {
		return "", "", fmt.Errorf("runner address %q: unix socket path must be absolute", a)
	}
	if network == "tcp" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", fmt.Errorf("runner address %q: %v", a, err)
		}
	}
	return network, addr, nil
}

func newRunner(address string, maxIdle int) (*Runner, error) {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          maxIdle,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // bounded by the call's context
		ForceAttemptHTTP2:     false,
	}
	base := "http://runner"
	if network == "tcp" {
		base = "http://" + addr
	}
	r := &Runner{Address: address, base: base, client: &http.Client{Transport: tr}, seed: xxhash.Sum64String(address)}
	r.probeOK.Store(true)
	return r, nil
}

// Statuses reports every runner's state.
func (p *Pool) Statuses() []Status {
	out := make([]Status, len(p.runners))
	now := time.Now().UnixNano()
	for i, r := range p.runners {
		out[i] = Status{Address: r.Address, Healthy: r.healthy(now), InFlight: r.inflight.Load(),
			Requests: r.requests.Load(), Failures: r.failures.Load()}
	}
	return out
}

func (r *Runner) healthy(now int64) bool {
	return r.probeOK.Load() && r.downUntil.Load() <= now
}

// Close stops health probes and closes idle connections.
func (p *Pool) Close() error {
	p.cancel()
	for _, r := range p.runners {
		r.client.CloseIdleConnections()
	}
	return nil
}

// Destruct implements caddy.Destructor for usage pools.
func (p *Pool) Destruct() error { return p.Close() }

// Result is a runner's answer: Response on success (HTTP 200), else the
// runner's Err. Runner is the address that answered.
type Result struct {
	Response *execapi.Response
	Err      *execapi.Error
	Runner   string
	// CPU is the guest's CPU time from the reply's execapi.HeaderCPU
	// (success or error); zero when the guest did not run or the header
	// is absent or malformed.
	CPU time.Duration
}

// Errors of Execute besides context errors.
var (
	// ErrUnavailable means no runner could be reached.
	ErrUnavailable = errors.New("no runner reachable")
	// ErrResponseTooLarge means the guest's body exceeded the limit.
	ErrResponseTooLarge = errors.New("response too large")
)

// BadReplyError is a runner reply that is not a valid execapi reply, or a
// connection that broke after the request was sent (not retried: the call
// may have run).
type BadReplyError struct {
	Runner string
	Err    error
}

func (e *BadReplyError) Error() string { return fmt.Sprintf("runner %s: %v", e.Runner, e.Err) }
func (e *BadReplyError) Unwrap() error { return e.Err }

// acceptReply asks runners for the framed success reply; JSON (§6.2) is
// understood too, from runners that predate it.
var acceptReply = execapi.ContentTypeRawReply + ", application/json"

// ReplyMargin is the time a runner's answer is given to travel back: the
// envelope's limits.deadline_ms is what is left of the caller's deadline
// minus it, so a runner's own timeout error arrives before the gateway
// gives up.
const ReplyMargin = 100 * time.Millisecond

// Execute sends req to the runners in rendezvous order of its content
// hash. It records the caller's deadline in req.Limits (SetDeadline with
// ReplyMargin) and marshals the envelope once; a retry on the next runner
// resends the same bytes (retries follow refusals that take microseconds,
// so the deadline they carry is still true to within them). Only the
// response body's decoded size is checked against maxBody (0 = no limit).
// When every runner answered concurrency_limited, the last such Result is
// returned.
//
// The call holds one of its tenant's (req.Context.TenantID) slots from
// here until Execute returns. A call that finds its tenant with
// TenantConcurrency units in flight (a call weighs 1 + its install's mean
// response size / TenantCostBytes, callCosts) waits in the tenant's queue
// (FIFO, TenantQueue long, TenantQueueWait at most); one that finds the
// queue full, or waits in vain, is refused without reaching a runner, with
// a concurrency_limited Result (Runner empty), exactly as if every runner
// had answered so. Waiting instead of refusing at once is what keeps a
// tenant that floods in a closed loop from turning each instant refusal
// into its next request: its calls queue behind its own, nobody else's. A runner's concurrency_limited answer is
// retried on the next runner only while the tenant is under the cap,
// counting this call: with a cap of N, a call whose tenant has N-1 other
// calls in flight takes the last slot, and its tenant is then at the cap,
// so it is not moved to another runner; it gets the runner's answer. A
// tenant at its cap has its fair share already and must not spread over
// the other runners' slots while other tenants wait (with a cap of 1, such
// answers are never retried). The check is made when the answer arrives,
// not when the call started, since other calls come and go meanwhile.
func (p *Pool) Execute(ctx context.Context, req *execapi.Request, maxBody int64) (*Result, error) {
	tenant, install := req.Context.TenantID, req.Context.InstallID
	weight := p.costs.weight(install)
	if !p.tenants.acquire(ctx, tenant, weight) {
		if ce := p.logger.Check(zap.DebugLevel, "tenant at its concurrency cap"); ce != nil {
			ce.Write(zap.String("tenant", tenant), zap.Int64("cap", p.tenants.limit.Load()))
		}
		return &Result{Err: &execapi.Error{Code: execapi.CodeConcurrencyLimited, Message: "tenant at its concurrency cap"}}, nil
	}
	defer p.tenants.release(tenant, weight)
	p.startOnce.Do(p.startProbes)
	req.Limits.SetDeadline(ctx, ReplyMargin)
	envelope, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding execute envelope: %w", err)
	}
	var buf [8]*Runner
	runners := p.order(req.Context.ContentHash, buf[:0])
	var busy *Result
	for _, r := range runners {
		res, retry, err := p.try(ctx, r, envelope, maxBody)
		if err == nil && !retry {
			if res.Response != nil {
				p.costs.observe(install, len(res.Response.Body))
			}
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil { // concurrency_limited
			busy = res
			if !p.tenants.belowLimit(tenant) {
				break
			}
			continue
		}
		if !retry {
			return nil, err
		}
		if ce := p.logger.Check(zap.DebugLevel, "runner unreachable, trying next"); ce != nil {
			ce.Write(zap.String("runner", r.Address), zap.Error(err))
		}
	}
	if busy != nil {
		return busy, nil
	}
	return nil, ErrUnavailable
}

// order appends to out the runners sorted healthy-first, each group by
// descending rendezvous score of key. Any number of runners is
// supported; out's capacity only saves an allocation.
func (p *Pool) order(key string, out []*Runner) []*Runner {
	kh := xxhash.Sum64String(key)
	now := time.Now().UnixNano()
	var buf [8]uint64
	scores := buf[:0]
	for _, r := range p.runners {
		s := mix64(kh ^ r.seed)
		if r.healthy(now) {
			s |= 1 << 63 // healthy runners sort first
		} else {
			s &^= 1 << 63
		}
		// insertion sort, descending
		out = append(out, r)
		scores = append(scores, s)
		i := len(out) - 1
		for i > 0 && scores[i-1] < s {
			scores[i] = scores[i-1]
			out[i] = out[i-1]
			i--
		}
		scores[i] = s
		out[i] = r
	}
	return out
}

// mix64 is splitmix64's finaliser: a good bijective mixer, so that
// score(runner, key) is uniform and independent across runners.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// try calls one runner. retry reports whether the next runner may be
// tried: the request never reached this one (err != nil), or it answered
// concurrency_limited (err == nil).
func (p *Pool) try(ctx context.Context, r *Runner, envelope []byte, maxBody int64) (res *Result, retry bool, err error) {
	// wrote tracks the transport's latest attempt: it may retry internally
	// on a new connection when a reused one turned out dead, so a write of
	// an earlier attempt must not count.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		GetConn:      func(string) { wrote.Store(false) },
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote.Store(info.Err == nil) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, r.base+execapi.PathExecute, bytes.NewReader(envelope))
	if err != nil {
		return nil, false, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{acceptReply}
	if p.cfg.Token != nil {
		tok, err := p.cfg.Token()
		if err != nil {
			return nil, false, err
		}
		req.Header["Authorization"] = []string{"Bearer " + tok}
	}
	r.inflight.Add(1)
	r.requests.Add(1)
	resp, err := r.client.Do(req)
	r.inflight.Add(-1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		r.failures.Add(1)
		r.markDown(p.cfg.FailDuration)
		var op *net.OpError
		if !wrote.Load() || errors.As(err, &op) && op.Op == "dial" {
			return nil, true, err
		}
		return nil, false, &BadReplyError{Runner: r.Address, Err: err}
	}
	defer resp.Body.Close()
	if resp.ContentLength >= lowprio.Threshold {
		// Bulk copying yields to other tenants' short calls.
		lowprio.Run(func() { res, err = readReply(resp, maxBody) })
	} else {
		res, err = readReply(resp, maxBody)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if errors.Is(err, ErrResponseTooLarge) {
			return nil, false, err
		}
		r.failures.Add(1)
		return nil, false, &BadReplyError{Runner: r.Address, Err: err}
	}
	res.Runner = r.Address
	if res.Err != nil && res.Err.Code == execapi.CodeConcurrencyLimited {
		return res, true, nil
	}
	return res, false, nil
}

func (r *Runner) markDown(d time.Duration) {
	now := time.Now()
	r.markedAt.Store(now.UnixNano())
	r.downUntil.Store(now.Add(d).UnixNano())
}

// readReply decodes a runner reply, bounding what is read: the JSON of a
// body of maxBody bytes is at most 4/3 of it in base64 plus headers.
func readReply(resp *http.Response, maxBody int64) (*Result, error) {
	raw := resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == execapi.ContentTypeRawReply
	limit := int64(-1)
	if maxBody > 0 {
		// The body, base64-encoded unless framed, and room for the
		// status and headers.
		limit = maxBody/3*4 + 8 + 256<<10
		if raw {
			limit = maxBody + 256<<10
		}
	}
	if limit > 0 && resp.ContentLength > limit {
		return nil, ErrResponseTooLarge
	}
	var body []byte
	var err error
	if limit > 0 {
		body, err = readAllLimited(resp.Body, resp.ContentLength, limit)
	} else {
		body, err = io.ReadAll(resp.Body)
	}
	if err != nil {
		return nil, err
	}
	res := &Result{CPU: execapi.CPU(resp.Header)}
	if resp.StatusCode == http.StatusOK {
		var out execapi.Response
		if raw {
			r, err := execapi.ParseRawReply(body)
			if err != nil {
				return nil, fmt.Errorf("decoding execute reply: %v", err)
			}
			out = *r
		} else if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("decoding execute reply: %v", err)
		}
		if maxBody > 0 && int64(len(out.Body)) > maxBody {
			return nil, ErrResponseTooLarge
		}
		if out.Status == 0 {
			out.Status = http.StatusOK
		}
		if out.Status < 200 || out.Status > 599 {
			// Never relayed (SPEC §8.2 step 10): a 1xx would make the
			// server switch protocols or send guest-chosen interim
			// headers. The guest answered, so it is the handler's fault.
			res.Err = &execapi.Error{Code: execapi.CodeBadHandler, Message: fmt.Sprintf("guest status %d is outside 200–599", out.Status)}
			return res, nil
		}
		res.Response = &out
		return res, nil
	}
	var eb execapi.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
		return nil, fmt.Errorf("runner answered %d without an error body", resp.StatusCode)
	}
	res.Err = &eb.Error
	return res, nil
}

func readAllLimited(r io.Reader, contentLength, limit int64) ([]byte, error) {
	size := int64(512)
	if contentLength > 0 {
		size = contentLength + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, ErrResponseTooLarge
	}
	return buf.Bytes(), nil
}

// startProbes runs active health checks until Close.
func (p *Pool) startProbes() {
	go func() {
		t := time.NewTicker(p.cfg.HealthInterval)
		defer t.Stop()
		for {
			p.probeAll()
			select {
			case <-p.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (p *Pool) probeAll() {
	var wg sync.WaitGroup
	for _, r := range p.runners {
		wg.Add(1)
		go func(r *Runner) {
			defer wg.Done()
			started := time.Now().UnixNano()
			ok := p.probe(r)
			was := r.probeOK.Swap(ok)
			// A good probe lifts a passive mark, but only one made before
			// the probe started: a probe in flight while the runner died
			// must not bring it back.
			if ok && r.markedAt.Load() < started {
				r.downUntil.Store(0)
			}
			if was != ok {
				p.logger.Info("runner health changed", zap.String("runner", r.Address), zap.Bool("healthy", ok))
			}
		}(r)
	}
	wg.Wait()
}

func (p *Pool) probe(r *Runner) bool {
	timeout := min(p.cfg.HealthInterval, 2*time.Second)
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+execapi.PathReadyz, nil)
	if err != nil {
		return false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
