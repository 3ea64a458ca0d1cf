// Package server is runnerd's HTTP API (SPEC §6.2): POST /v1/execute runs
// a handler of a verified bundle in the engine, POST /v1/warmup prepares
// bundles ahead of traffic, and /healthz, /readyz and /metrics serve
// operations. Every /v1 call needs the runner token; every failure is an
// execapi error code with its HTTP status.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/lowprio"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/tenantid"
	"github.com/extedge/extedge/runnerd/engine"
	"github.com/extedge/extedge/runnerd/hostapi"
)

// ModuleSource finds the compiled module and export that serve an
// envelope's handler: in production the verified bundle cache.
type ModuleSource interface {
	// Module returns the module and export for handler in the bundle with
	// contentHash of extension. Errors are *execapi.Error with
	// bundle_unavailable, integrity_failed or bad_handler.
	Module(ctx context.Context, contentHash, extension, handler string) (*engine.Module, string, error)
	// Warmup fetches, verifies and compiles a bundle ahead of traffic.
	Warmup(ctx context.Context, contentHash string) error
}

// RecordSink receives one execution record per call. Add must not block.
type RecordSink interface {
	Add(rec registryapi.ExecutionRecord)
}

// LogSink receives the guest's log lines of one call (the debug stream).
// Publish must not block.
type LogSink interface {
	Publish(env *execapi.Request, lines []hostapi.LogLine)
}

// Config configures the server.
type Config struct {
	// Token is the runner token every /v1 call must present.
	Token string
	// Engine runs the guests.
	Engine *engine.Engine
	// Modules resolves handlers to compiled modules.
	Modules ModuleSource

	// DefaultLimits apply when the envelope asks for none; MaxLimits cap
	// what an envelope may ask for (limits are only overridable downward).
	DefaultLimits engine.Limits
	MaxLimits     engine.Limits
	// Budgets bound host calls and logs per call.
	Budgets hostapi.Budgets
	// MaxRequestBytes caps the guest request JSON. Default: 8 MiB. The
	// envelope may be 1 MiB larger (capabilities, allowlist, secrets).
	MaxRequestBytes int

	// MaxConcurrency caps calls in flight in the process. Instances do not
	// scale across goroutines of one process (runners scale by process),
	// so a small number suffices. Default: 16.
	MaxConcurrency int
	// MaxConcurrencyPerTenant caps one tenant's calls in flight.
	// Default: a quarter of MaxConcurrency, at least 1, so one tenant's
	// runaway calls hold at most a quarter of the slots.
	MaxConcurrencyPerTenant int
	// MaxQueuePerTenant caps one tenant's calls waiting for a slot; more
	// are refused at once. Default: MaxConcurrencyPerTenant.
	MaxQueuePerTenant int
	// QueueWait is how long a call waits for a slot before
	// concurrency_limited. Slots go to waiting tenants fairly (the one
	// with the fewest calls running first). Default: 100ms.
	QueueWait time.Duration

	// Ready reports whether the runner can serve (/readyz); nil means yes.
	Ready func() error
	// Records and Logs receive telemetry; nil disables them.
	Records RecordSink
	Logs    LogSink
	// Registerer and Gatherer hold the Prometheus metrics. Default: a
	// private registry served on /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// MaxMetricExtensions bounds the extension label of guest metrics: the
	// first this many extensions that emit metrics get their own value,
	// the rest share "_other". Default: 100.
	MaxMetricExtensions int
	// Logger logs calls and guest log lines. Default: no-op.
	Logger *zap.Logger
}

// Server serves the runner API.
type Server struct {
	cfg     Config
	token   []byte
	limits  *limiter
	metrics *metrics
	log     *zap.Logger
	mux     *http.ServeMux
	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool
	heavy    *heavyInstalls
}

// New checks cfg, fills defaults and registers the metrics.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Modules == nil {
		return nil, errors.New("server needs an engine and a module source")
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("server needs a runner token")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 8 << 20
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 16
	}
	if cfg.MaxConcurrencyPerTenant <= 0 {
		cfg.MaxConcurrencyPerTenant = max(1, cfg.MaxConcurrency/4)
	}
	if cfg.MaxQueuePerTenant <= 0 {
		cfg.MaxQueuePerTenant = cfg.MaxConcurrencyPerTenant
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 100 * time.Millisecond
	}
	cfg.DefaultLimits = withLimitDefaults(cfg.DefaultLimits)
	if cfg.MaxLimits.Timeout <= 0 {
		cfg.MaxLimits.Timeout = time.Duration(manifest.DefaultMaxTimeoutMS) * time.Millisecond
	}
	if cfg.MaxLimits.MemoryBytes <= 0 {
		cfg.MaxLimits.MemoryBytes = max(cfg.DefaultLimits.MemoryBytes, 256<<20)
	}
	if cfg.MaxMetricExtensions <= 0 {
		cfg.MaxMetricExtensions = 100
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		cfg:    cfg,
		token:  []byte(strings.TrimSpace(cfg.Token)),
		limits: newLimiter(cfg.MaxConcurrency, cfg.MaxConcurrencyPerTenant, cfg.MaxQueuePerTenant, cfg.QueueWait),
		log:    cfg.Logger,
		heavy:  newHeavyInstalls(cfg.Engine.DemoteAfter()),
	}
	var err error
	var reuseStats func() engine.ReuseStats
	if cfg.Engine != nil {
		reuseStats = cfg.Engine.ReuseStats
	}
	if s.metrics, err = newMetrics(cfg.Registerer, s.limits, cfg.MaxMetricExtensions, reuseStats); err != nil {
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+execapi.PathExecute, s.authed(s.serveExecute))
	s.mux.HandleFunc("POST "+execapi.PathWarmup, s.authed(s.serveWarmup))
	s.mux.HandleFunc("GET "+execapi.PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET "+execapi.PathReadyz, s.serveReadyz)
	if cfg.Gatherer != nil {
		s.mux.Handle("GET "+execapi.PathMetrics, promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		allow := map[string]string{execapi.PathExecute: "POST", execapi.PathWarmup: "POST",
			execapi.PathHealthz: "GET, HEAD", execapi.PathReadyz: "GET, HEAD", execapi.PathMetrics: "GET, HEAD"}[r.URL.Path]
		if allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, &execapi.Error{Code: "method_not_allowed", Message: "use " + allow}, http.StatusMethodNotAllowed)
			return
		}
		writeError(w, &execapi.Error{Code: "not_found", Message: "no such endpoint"}, http.StatusNotFound)
	})
	return s, nil
}

func withLimitDefaults(l engine.Limits) engine.Limits {
	if l.Timeout <= 0 {
		l.Timeout = engine.DefaultTimeout
	}
	if l.InitTimeout <= 0 {
		l.InitTimeout = engine.DefaultInitTimeout
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = engine.DefaultMemoryBytes
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = engine.DefaultMaxResponseBytes
	}
	return l
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authed checks the bearer token in constant time.
func (s *Server) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), s.token) != 1 {
			writeError(w, &execapi.Error{Code: execapi.CodeUnauthorized, Message: "missing or wrong runner token"}, 0)
			return
		}
		next(w, r)
	}
}

// Drain marks the runner as shutting down: /readyz answers 503 from now
// on, so that probes and the gateway stop choosing it, while calls are
// still served (ServeOptions.Drain). /healthz stays 200: the process is alive.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			s.log.Warn("not ready", zap.Error(err))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) serveExecute(w http.ResponseWriter, r *http.Request) {
	envelopeCap := int64(s.cfg.MaxRequestBytes) + 1<<20
	if r.ContentLength > envelopeCap {
		writeError(w, &execapi.Error{Code: execapi.CodePayloadTooLarge, Message: "envelope too large"}, 0)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, envelopeCap+1))
	if err != nil {
		writeError(w, &execapi.Error{Code: execapi.CodeBadRequest, Message: "reading envelope failed"}, 0)
		return
	}
	if int64(len(body)) > envelopeCap {
		writeError(w, &execapi.Error{Code: execapi.CodePayloadTooLarge, Message: "envelope too large"}, 0)
		return
	}
	var env execapi.Request
	if err := json.Unmarshal(body, &env); err != nil {
		msg := "malformed envelope: " + jsonProblem(err)
		var ce *execapi.CapabilityError
		if errors.As(err, &ce) {
			msg = ce.Error()
		}
		writeError(w, &execapi.Error{Code: execapi.CodeBadRequest, Message: msg}, 0)
		return
	}
	resp, stats, eerr := s.call(r.Context(), &env)
	if stats.ran {
		// The guest's CPU time, for the gateway's cpu_ms_per_minute quota.
		execapi.SetCPU(w.Header(), stats.CPU)
	}
	if eerr != nil {
		eerr.RequestID = env.Context.RequestID
		writeError(w, eerr, 0)
		return
	}
	reply := func() {
		if execapi.AcceptsRawReply(r.Header.Get("Accept")) {
			writeRawReply(w, resp)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
	if len(resp.Body) >= lowprio.Threshold {
		lowprio.Run(reply) // bulk copying yields to other tenants' short calls
		return
	}
	reply()
}

// writeRawReply writes the framed form of resp (execapi.ContentTypeRawReply):
// its metadata line, then the guest's body without a copy.
func writeRawReply(w http.ResponseWriter, resp *execapi.Response) {
	meta, err := execapi.AppendRawReply(nil, resp)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, execapi.ErrorBody{Error: execapi.Error{Code: execapi.CodeInternal, Message: "encoding reply"}})
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{execapi.ContentTypeRawReply}
	h["Cache-Control"] = []string{"no-store"}
	h["Content-Length"] = []string{strconv.Itoa(len(meta) + len(resp.Body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(meta)
	_, _ = w.Write(resp.Body)
}

func (s *Server) serveWarmup(w http.ResponseWriter, r *http.Request) {
	var req execapi.WarmupRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, &execapi.Error{Code: execapi.CodeBadRequest, Message: "malformed warmup request: " + jsonProblem(err)}, 0)
		return
	}
	if len(req.ContentHashes) > 100 {
		writeError(w, &execapi.Error{Code: execapi.CodeBadRequest, Message: "at most 100 content hashes per warmup"}, 0)
		return
	}
	for _, h := range req.ContentHashes {
		if !bundle.ValidHash(h) {
			writeError(w, &execapi.Error{Code: execapi.CodeBadRequest, Message: fmt.Sprintf("bad content hash %q", h)}, 0)
			return
		}
	}
	type result struct {
		ContentHash string         `json:"content_hash"`
		Error       *execapi.Error `json:"error,omitempty"`
	}
	out := struct {
		Results []result `json:"results"`
	}{Results: []result{}}
	status := http.StatusOK
	for _, h := range req.ContentHashes {
		res := result{ContentHash: h}
		if err := s.cfg.Modules.Warmup(r.Context(), h); err != nil {
			res.Error = asExecError(err)
			status = execapi.HTTPStatus(res.Error.Code)
		}
		out.Results = append(out.Results, res)
	}
	writeJSON(w, status, out)
}

// Execute runs one envelope: validation, concurrency caps, module lookup,
// the guest call, and telemetry. It is the in-process path of
// POST /v1/execute. The call's one deadline is set here, from the
// envelope's limits.deadline_ms (execapi.Limits.Deadline): waiting for a
// slot, fetching and compiling count against it, so a cold start never
// outlives the gateway's answer; the guest's own timeout starts later,
// just before the handler export, and is cut to what is left of it.
func (s *Server) Execute(ctx context.Context, env *execapi.Request) (*execapi.Response, *execapi.Error) {
	resp, _, eerr := s.call(ctx, env)
	return resp, eerr
}

// call is Execute with the call's stats.
func (s *Server) call(ctx context.Context, env *execapi.Request) (*execapi.Response, *callStats, *execapi.Error) {
	started := time.Now()
	ctx, cancel := env.Limits.Deadline(ctx)
	defer cancel()
	resp, stats, eerr := s.execute(ctx, env)
	s.finish(env, started, resp, stats, eerr)
	return resp, stats, eerr
}

type callStats struct {
	engine.Stats
	egress int64
	valid  bool // the envelope passed validation: the call gets a record
	ran    bool // the guest was instantiated
}

// cpu is the call's CPU time; the guest's wall time where the platform
// cannot measure CPU.
func (st *callStats) cpu() time.Duration {
	if st.CPU > 0 {
		return st.CPU
	}
	return st.Instantiate + st.Guest
}

func (s *Server) execute(ctx context.Context, env *execapi.Request) (*execapi.Response, *callStats, *execapi.Error) {
	stats := &callStats{}
	if eerr := validateEnvelope(env); eerr != nil {
		return nil, stats, eerr
	}
	stats.valid = true
	request, err := env.GuestJSON()
	if err != nil {
		return nil, stats, &execapi.Error{Code: execapi.CodeBadRequest, Message: "envelope cannot be encoded for the guest"}
	}
	if len(request) > s.cfg.MaxRequestBytes {
		return nil, stats, &execapi.Error{Code: execapi.CodePayloadTooLarge, Message: fmt.Sprintf("guest request is %d bytes, more than %d", len(request), s.cfg.MaxRequestBytes)}
	}

	release, waited := s.limits.acquire(ctx, env.Context.TenantID)
	if waited > 0 {
		s.metrics.queueWait.Observe(waited.Seconds())
	}
	if release == nil {
		if ctx.Err() != nil {
			return nil, stats, callOver("while waiting for a runner slot")
		}
		s.metrics.rejected.Inc()
		return nil, stats, &execapi.Error{Code: execapi.CodeConcurrencyLimited, Message: "runner concurrency limit reached"}
	}
	defer release()

	mod, export, err := s.cfg.Modules.Module(ctx, env.Context.ContentHash, env.Context.ExtensionID, env.Endpoint.Handler)
	if err != nil {
		if ctx.Err() != nil {
			return nil, stats, callOver("while the bundle was prepared")
		}
		return nil, stats, asExecError(err)
	}
	inv := hostapi.NewInvocation(ctx, env, s.cfg.Budgets)
	stats.ran = true
	lim := s.limitsFor(env.Limits)
	lim.StartDemoted = s.heavy.startDemoted(env.Context.InstallID)
	var res *engine.Result
	if reuse, ok := reuseFor(env); ok {
		res, err = s.cfg.Engine.RunReused(ctx, reuse, mod, export, request, lim, inv)
	} else {
		res, err = s.cfg.Engine.Run(ctx, mod, export, request, lim, inv)
	}
	var replyBytes int
	if res.Response != nil {
		replyBytes = len(res.Response.Body)
	}
	s.heavy.observe(env.Context.InstallID, res.Stats.CPU, replyBytes)
	stats.Stats = res.Stats
	stats.egress = res.Host.EgressBytes
	s.emitGuestLogs(env, res.Host.Logs)
	s.metrics.observeGuestMetrics(env.Context.ExtensionID, res.Host.Metrics)
	if err != nil {
		return nil, stats, asExecError(err)
	}
	return res.Response, stats, nil
}

// callOver is the error of a call whose deadline passed before the guest
// started.
func callOver(when string) *execapi.Error {
	return &execapi.Error{Code: execapi.CodeTimeout, Message: "the call's deadline passed " + when}
}

// reuseFor is the instance reuse an envelope asks for (SPEC §6.5): only
// for a named install, keyed by tenant and install so that an instance
// never serves another, with its bounds capped at what registryd accepts.
func reuseFor(env *execapi.Request) (engine.Reuse, bool) {
	ir := env.InstanceReuse
	if ir == nil || env.Context.InstallID == "" {
		return engine.Reuse{}, false
	}
	return engine.Reuse{
		Key:      env.Context.TenantID + "\x00" + env.Context.InstallID,
		MaxCalls: min(ir.MaxCalls, registryapi.MaxReuseMaxCalls),
		MaxAge:   time.Duration(min(ir.MaxAgeMS, registryapi.MaxReuseMaxAgeMS)) * time.Millisecond,
	}, true
}

// limitsFor applies an envelope's limits downward only.
func (s *Server) limitsFor(req execapi.Limits) engine.Limits {
	l := s.cfg.DefaultLimits
	if req.TimeoutMS > 0 {
		l.Timeout = min(time.Duration(req.TimeoutMS)*time.Millisecond, s.cfg.MaxLimits.Timeout)
	}
	if req.MemoryMB > 0 {
		l.MemoryBytes = min(int64(req.MemoryMB)<<20, s.cfg.MaxLimits.MemoryBytes)
	}
	if req.Fuel > 0 {
		l.Fuel = req.Fuel
		if s.cfg.MaxLimits.Fuel > 0 {
			l.Fuel = min(l.Fuel, s.cfg.MaxLimits.Fuel)
		}
	}
	return l
}

func validateEnvelope(env *execapi.Request) *execapi.Error {
	bad := func(format string, args ...any) *execapi.Error {
		return &execapi.Error{Code: execapi.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
	}
	c := env.Context
	switch {
	case !tenantid.Valid(c.TenantID):
		return bad("context.tenant_id must be 1-64 characters of [A-Za-z0-9._-]")
	case !manifest.ValidName(c.ExtensionID):
		return bad("context.extension_id is not a valid extension name")
	case !bundle.ValidHash(c.ContentHash):
		return bad("context.content_hash must match ^sha256:[0-9a-f]{64}$")
	case env.Endpoint.Handler == "":
		return bad("endpoint.handler is required")
	case len(c.RequestID) > 128 || len(c.InstallID) > 128 || len(c.VersionID) > 128:
		return bad("context ids must be at most 128 characters")
	case env.Limits.TimeoutMS < 0 || env.Limits.MemoryMB < 0:
		return bad("limits must not be negative")
	}
	if _, err := manifest.ParseHandlerRef(env.Endpoint.Handler); err != nil {
		return bad("endpoint.handler: %v", err)
	}
	if _, err := execapi.NormalizeCapabilities(env.Capabilities); err != nil {
		// Envelopes decoded from JSON are normalised already; this catches
		// in-process callers.
		return bad("%v", err)
	}
	if len(env.Config) > 0 {
		trimmed := bytes.TrimSpace(env.Config)
		if !bytes.Equal(trimmed, []byte("null")) && (len(trimmed) == 0 || trimmed[0] != '{') {
			return bad("config must be a JSON object")
		}
	}
	return nil
}

func asExecError(err error) *execapi.Error {
	var ee *execapi.Error
	if errors.As(err, &ee) {
		return ee
	}
	return &execapi.Error{Code: execapi.CodeInternal, Message: "internal error"}
}

// finish records the call: metrics, log line, execution record.
func (s *Server) finish(env *execapi.Request, started time.Time, resp *execapi.Response, st *callStats, eerr *execapi.Error) {
	finished := time.Now()
	outcome := "ok"
	status := 0
	if eerr != nil {
		outcome = eerr.Code
	} else if resp != nil {
		status = resp.Status
	}
	s.metrics.observe(outcome, finished.Sub(started), st)
	endpoint, eventID := env.Endpoint.Method+" "+env.Endpoint.Path, ""
	if env.Event != nil {
		endpoint, eventID = "event "+env.Event.Topic, env.Event.ID
	}
	if eerr != nil && eerr.Code == execapi.CodeInternal {
		s.log.Error("execute failed", zap.String("request_id", env.Context.RequestID), zap.String("code", eerr.Code), zap.String("message", eerr.Message))
	} else if ce := s.log.Check(zapcore.DebugLevel, "execute"); ce != nil {
		ce.Write(zap.String("request_id", env.Context.RequestID), zap.String("tenant", env.Context.TenantID),
			zap.String("extension", env.Context.ExtensionID), zap.String("outcome", outcome),
			zap.Duration("duration", finished.Sub(started)))
	}
	// Every validated call leaves a record, refused ones (concurrency,
	// integrity) included, so operators see them per tenant.
	if s.cfg.Records != nil && st.valid {
		s.cfg.Records.Add(registryapi.ExecutionRecord{
			RequestID:       env.Context.RequestID,
			TenantID:        env.Context.TenantID,
			ExtensionID:     env.Context.ExtensionID,
			InstallID:       env.Context.InstallID,
			VersionID:       env.Context.VersionID,
			ContentHash:     env.Context.ContentHash,
			Endpoint:        endpoint,
			EventID:         eventID,
			StartedAt:       started.UTC(),
			FinishedAt:      finished.UTC(),
			Outcome:         outcome,
			HTTPStatus:      status,
			DurationMS:      float64(finished.Sub(started).Microseconds()) / 1000,
			CPUMS:           float64(st.cpu().Microseconds()) / 1000,
			Fuel:            st.FuelUsed,
			PeakMemoryBytes: st.PeakMemoryBytes,
			EgressBytes:     st.egress,
		})
	}
}

// emitGuestLogs writes the guest's log lines to the runner log and the
// debug stream.
func (s *Server) emitGuestLogs(env *execapi.Request, lines []hostapi.LogLine) {
	if len(lines) == 0 {
		return
	}
	for _, l := range lines {
		lvl := zapcore.InfoLevel
		switch l.Level {
		case "warn":
			lvl = zapcore.WarnLevel
		case "error":
			lvl = zapcore.ErrorLevel
		}
		if ce := s.log.Check(lvl, "guest log"); ce != nil {
			ce.Write(zap.String("stream", l.Stream), zap.String("tenant", env.Context.TenantID),
				zap.String("extension", env.Context.ExtensionID), zap.String("request_id", env.Context.RequestID),
				zap.String("message", l.Message), zap.Bool("truncated", l.Truncated))
		}
	}
	if s.cfg.Logs != nil {
		s.cfg.Logs.Publish(env, lines)
	}
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be %s", te.Field, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of input"
	}
	return "invalid JSON"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding reply"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError writes an error body; status 0 means the code's status.
func writeError(w http.ResponseWriter, e *execapi.Error, status int) {
	if status == 0 {
		status = execapi.HTTPStatus(e.Code)
	}
	writeJSON(w, status, execapi.ErrorBody{Error: *e})
}
