package caddymodule

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/caddymodule/auth"
	"github.com/extedge/extedge/caddymodule/runnerpool"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/lowprio"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
)

// serveAPI runs the §8.2 pipeline for /api/ext/{extension}/{path...}.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &apiCall{h: h, r: r, rid: requestID(r)}
	code := c.serve(w)
	observeRequest(routeAPI, code, start)
	accessFields{requestID: c.rid, tenant: c.tenant(), extension: c.ext, outcome: code}.record(r)
}

// serve answers the call and returns the outcome code for metrics and the
// access log ("ok" on success).
func (c *apiCall) serve(w http.ResponseWriter) string {
	c.h.corsHeaders(w, c.r)
	if c.r.Method == http.MethodOptions && c.r.Header.Get("Access-Control-Request-Method") != "" {
		c.h.preflight(w, c.r)
		return "preflight"
	}
	resp, ge := c.run()
	if ge != nil {
		c.h.pace(c.r.Context(), ge)
		writeError(w, c.rid, ge)
		return ge.code
	}
	writeGuestResponse(w, c.r, c.rid, resp)
	return "ok"
}

// tenant is the authenticated tenant, "" before step 2 succeeded.
func (c *apiCall) tenant() string {
	if c.id == nil {
		return ""
	}
	return c.id.Tenant
}

// apiCall is one /api/ext request on its way through the §8.2 steps. Each
// step is a method that fills in what later steps need or returns the
// error that ends the call.
type apiCall struct {
	h   *Handler
	r   *http.Request
	rid string

	ext   string                       // step 1: the extension's name, once valid
	sub   string                       // step 1: the endpoint path, still escaped
	id    *auth.Identity               // step 2
	inst  *registryapi.ResolvedInstall // step 4
	match manifest.Match               // step 5
	body  []byte                       // step 7
	cpu   time.Duration                // step 9: the guest's CPU time, charged to the quota

	breaker breakerCall // between steps 5 and 6
}

// run takes the call through the steps in SPEC order.
func (c *apiCall) run() (*execapi.Response, *gatewayError) {
	if ge := c.parsePath(); ge != nil {
		return nil, ge
	}
	if ge := c.authenticate(); ge != nil {
		return nil, ge
	}
	if ge := c.h.checkRateLimits(c.r.Context(), c.id.Tenant, c.ext); ge != nil {
		return nil, ge
	}
	if ge := c.resolve(); ge != nil {
		return nil, ge
	}
	if ge := c.matchEndpoint(); ge != nil {
		return nil, ge
	}
	if ge := c.checkBreaker(); ge != nil {
		return nil, ge
	}
	defer c.settleBreaker()
	release, ge := c.acquireQuota()
	if ge != nil {
		return nil, ge
	}
	defer release()
	if c.body, ge = c.h.readBody(c.r); ge != nil {
		return nil, ge
	}
	return c.execute(c.envelope())
}

// parsePath is step 1: the extension id must be a valid name; the rest is
// the endpoint path.
func (c *apiCall) parsePath() *gatewayError {
	rest := c.r.URL.EscapedPath()[len(prefixAPI):]
	ext, sub, _ := strings.Cut(rest, "/")
	if !manifest.ValidName(ext) {
		return newError(codeExtensionNotFound, "no such extension")
	}
	c.ext, c.sub = ext, "/"+sub
	return nil
}

// authenticate is step 2.
func (c *apiCall) authenticate() *gatewayError {
	id, err := c.h.auth.Authenticate(c.r)
	if err != nil {
		if ce := c.h.logger.Check(zapcore.DebugLevel, "unauthenticated"); ce != nil {
			ce.Write(zap.String("request_id", c.rid), zap.Error(err))
		}
		return newError(codeUnauthenticated, "missing or invalid credentials")
	}
	if !id.MayUse(c.ext) {
		return newError(codeForbidden, "the token is not valid for this extension")
	}
	if id.ByCookie && !safeMethod(c.r.Method) && !c.h.sameOriginWrite(c.r) {
		return newError(codeForbidden, "a cookie-authenticated write must come from an allowed origin")
	}
	if c.h.Auth.RequirePermissions {
		need := auth.PermWrite
		if c.r.Method == http.MethodGet || c.r.Method == http.MethodHead {
			need = auth.PermRead
		}
		if !id.Has(need) {
			return newError(codeForbidden, "the token lacks "+need)
		}
	}
	c.id = id
	return nil
}

// resolve is step 4: the tenant's install, cached per §7.5.
func (c *apiCall) resolve() *gatewayError {
	inst, err := c.h.state.registry.Resolve(c.r.Context(), c.id.Tenant, c.ext)
	switch {
	case errors.Is(err, registryapi.ErrNotInstalled):
		return newError(codeNotInstalled, "the extension is not installed for this tenant")
	case err != nil:
		return newError(codeRegistryUnavailable, "the extension registry is unavailable")
	}
	c.inst = inst
	return nil
}

// matchEndpoint is step 5.
func (c *apiCall) matchEndpoint() *gatewayError {
	match, allow, found := c.inst.Router.Match(c.r.Method, c.sub)
	if found {
		c.match = match
		return nil
	}
	if len(allow) > 0 {
		ge := newError(codeMethodNotAllowed, "method not allowed for this endpoint")
		ge.allow = strings.Join(allow, ", ")
		return ge
	}
	return newError(codeEndpointNotFound, "no such endpoint")
}

// acquireQuota is step 6. The returned release ends the call's share of
// the quotas and charges the guest CPU time the runner reported (c.cpu).
func (c *apiCall) acquireQuota() (release func(), ge *gatewayError) {
	q := c.inst.Quotas
	if q.IsZero() {
		return func() {}, nil
	}
	hold := c.timeout() + deadlineGrace + quotaLeaseSlack
	lease, d := c.h.state.quotaEnforcer().Admit(c.r.Context(), c.inst.InstallID, *q, hold)
	if !d.Allowed {
		rateDecisions.WithLabelValues("quota", "deny", d.Backend).Inc()
		if ce := c.h.logger.Check(zapcore.DebugLevel, "quota exceeded"); ce != nil {
			ce.Write(zap.String("request_id", c.rid), zap.String("install", c.inst.InstallID),
				zap.String("quota", d.Exceeded), zap.String("backend", d.Backend))
		}
		ge := newError(codeQuotaExceeded, "the install's "+d.Exceeded+" quota is exhausted")
		ge.retryAfter = max(d.RetryAfter, time.Second)
		return nil, ge
	}
	rateDecisions.WithLabelValues("quota", "allow", d.Backend).Inc()
	return func() { lease.Done(c.cpu) }, nil
}

// timeout is the guest's time limit: the gateway's timeout, or the
// endpoint's timeout_ms when that is shorter.
func (c *apiCall) timeout() time.Duration {
	timeout := time.Duration(c.h.Timeout)
	if ms := c.match.Endpoint.TimeoutMS; ms > 0 && time.Duration(ms)*time.Millisecond < timeout {
		timeout = time.Duration(ms) * time.Millisecond
	}
	return timeout
}

// execute is steps 9 and 10: send the envelope to a runner within the
// call's deadline and map its reply. The deadline is the guest's timeout
// plus deadlineGrace for queueing, fetch and compilation; the runner pool
// hands what is left of it to the runner (limits.deadline_ms), so runner
// and gateway agree on when the call is over.
func (c *apiCall) execute(req *execapi.Request) (*execapi.Response, *gatewayError) {
	ctx, cancel := context.WithTimeout(c.r.Context(), c.timeout()+deadlineGrace)
	defer cancel()
	res, err := c.h.state.runners.Execute(ctx, req, c.h.MaxResponseBody)
	c.breaker.outcome = breakerOutcome(res, err)
	if err != nil {
		return nil, c.h.executeError(c.r, c.rid, err)
	}
	c.cpu = res.CPU
	if res.Err != nil {
		if ce := c.h.logger.Check(zapcore.DebugLevel, "runner error"); ce != nil {
			ce.Write(zap.String("request_id", c.rid), zap.String("runner", res.Runner),
				zap.String("code", res.Err.Code), zap.String("message", res.Err.Message))
		}
		return nil, runnerError(res.Err)
	}
	return res.Response, nil
}

func (h *Handler) executeError(r *http.Request, rid string, err error) *gatewayError {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return newError(codeTimeout, "the extension handler did not answer in time")
	case errors.Is(err, context.Canceled) || r.Context().Err() != nil:
		// The client went away; nobody reads this.
		return newError(codeClientClosed, "")
	case errors.Is(err, runnerpool.ErrResponseTooLarge):
		return newError(codeResponseTooLarge, "the extension's response is too large")
	case errors.Is(err, runnerpool.ErrUnavailable):
		h.logger.Warn("no runner reachable", zap.String("request_id", rid))
		ge := newError(codeRunnersUnavailable, "no extension runner is reachable")
		ge.retryAfter = time.Second
		return ge
	}
	h.logger.Warn("runner call failed", zap.String("request_id", rid), zap.Error(err))
	return newError(codeBadGateway, "the extension runner failed")
}

func (h *Handler) checkRateLimits(ctx context.Context, tenant, ext string) *gatewayError {
	rl := h.RateLimit
	if rl == nil {
		return nil
	}
	lim := h.state.limiter.limiter()
	check := func(scope, key string, spec *RateSpec) *gatewayError {
		if spec == nil {
			return nil
		}
		d, _ := lim.Allow(ctx, key, spec.rate())
		if d.Allowed {
			rateDecisions.WithLabelValues(scope, "allow", d.Backend).Inc()
			return nil
		}
		rateDecisions.WithLabelValues(scope, "deny", d.Backend).Inc()
		ge := newError(codeRateLimited, "too many requests")
		ge.retryAfter = max(d.RetryAfter, time.Second)
		return ge
	}
	if ge := check("tenant", "t:"+tenant, rl.PerTenant); ge != nil {
		return ge
	}
	return check("extension", "e:"+tenant+"\x00"+ext, rl.PerExtension)
}

// readBody enforces max_request_body: by Content-Length before reading,
// and while streaming for chunked bodies. GET and HEAD bodies are dropped.
func (h *Handler) readBody(r *http.Request) ([]byte, *gatewayError) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	tooLarge := newError(codePayloadTooLarge, "the request body is larger than "+strconv.FormatInt(h.MaxRequestBody, 10)+" bytes")
	if r.ContentLength > h.MaxRequestBody {
		return nil, tooLarge
	}
	size := 512
	if r.ContentLength > 0 {
		size = int(r.ContentLength)
	}
	buf := make([]byte, 0, size)
	lr := io.LimitReader(r.Body, h.MaxRequestBody+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > h.MaxRequestBody {
			return nil, tooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			return nil, newError(codeBadRequest, "")
		}
	}
	if len(buf) == 0 {
		return nil, nil
	}
	return buf, nil
}

// envelope is step 8: the §6.2 execute request. context.extension_id is
// the extension's name (runnerd keys module caches and the debug stream
// by it). The user is attached when the install grants user.read; the
// runner decides again from the same grants (execapi.Request.Guest).
func (c *apiCall) envelope() *execapi.Request {
	r, id, inst, m := c.r, c.id, c.inst, c.match
	var query map[string]string
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		query = make(map[string]string, len(q))
		for k, v := range q {
			if len(v) > 0 {
				query[k] = v[0]
			}
		}
	}
	path := c.sub
	if p, err := unescapePath(c.sub); err == nil {
		path = p
	}
	req := &execapi.Request{
		Context: execapi.Context{
			RequestID:   c.rid,
			TenantID:    id.Tenant,
			ExtensionID: c.ext,
			InstallID:   inst.InstallID,
			VersionID:   inst.Version.ID,
			ContentHash: inst.ContentHash,
		},
		HTTP: execapi.HTTPRequest{
			Method:  r.Method,
			Path:    path,
			Query:   query,
			Headers: guestRequestHeaders(r, c.rid, id.Tenant, c.ext, idempotencyKey(r, id.Tenant, c.ext)),
			Body:    c.body,
		},
		Endpoint: execapi.Endpoint{
			Method:  m.Endpoint.Method,
			Path:    m.Endpoint.Path,
			Handler: m.Endpoint.Handler,
			Params:  m.Params,
		},
		Limits:          execapi.Limits{TimeoutMS: int(c.timeout() / time.Millisecond)},
		Config:          inst.Config,
		Capabilities:    inst.Capabilities,
		EgressAllowlist: inst.EgressAllowlist,
		SecretEnvelope:  inst.SecretEnvelope,
	}
	if req.Capabilities == nil {
		req.Capabilities = []string{}
	}
	if ir := inst.InstanceReuse; ir != nil && ir.Enabled {
		req.InstanceReuse = &execapi.InstanceReuse{MaxCalls: ir.MaxCalls, MaxAgeMS: ir.MaxAgeMS}
	}
	if req.Granted(execapi.CapUserRead) && id.UserID != "" {
		req.User = &execapi.User{ID: id.UserID, Email: id.Email, Name: id.Name, Type: id.UserType}
	}
	return req
}

func unescapePath(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	return url.PathUnescape(p)
}

// apiCSP is on every /api/ext response, guest or error (SPEC §8.2 step
// 10, §16): a guest answer opened at the top level, whatever its type,
// is a sandboxed document with no script and cannot act on the gateway's
// (and the PSA's) origin.
const apiCSP = "sandbox; default-src 'none'; frame-ancestors 'none'"

// writeGuestResponse writes the guest's reply with the §8.2 step 10 header
// policy.
func writeGuestResponse(w http.ResponseWriter, r *http.Request, rid string, resp *execapi.Response) {
	h := w.Header()
	copyGuestHeaders(h, resp.Headers)
	h["X-Request-Id"] = []string{rid}
	if _, ok := h["Content-Type"]; !ok && len(resp.Body) > 0 {
		h["Content-Type"] = []string{"application/octet-stream"}
	}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Content-Security-Policy"] = []string{apiCSP}
	noBody := r.Method == http.MethodHead || resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified
	if !noBody {
		h["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	}
	w.WriteHeader(resp.Status)
	switch {
	case noBody || len(resp.Body) == 0:
	case len(resp.Body) >= lowprio.Threshold:
		// Bulk copying yields to other tenants' short calls.
		lowprio.Run(func() { _, _ = w.Write(resp.Body) })
	default:
		_, _ = w.Write(resp.Body)
	}
}

// corsHeaders adds CORS response headers for allowed origins. Credentials
// are never allowed: browsers send the bearer token explicitly.
func (h *Handler) corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || len(h.cors) == 0 {
		return
	}
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	if !h.cors[origin] {
		return
	}
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, Etag, Content-Disposition")
}

// safeMethod reports whether method is one a browser may send cross-site
// without the page being allowed to (no state change by contract).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// sameOriginWrite is the CSRF check of a cookie-authenticated write (SPEC
// §8.2 step 2): the browser's Origin must be the gateway's own origin or
// one of cors_origins; without Origin, Sec-Fetch-Site must say
// same-origin. The opaque origin `null` is refused here even when
// cors_origins lists it: sandboxed extension documents are exactly the
// pages that must not ride the user's cookie, and the SDK never sends
// cookies (it uses a bearer token).
func (h *Handler) sameOriginWrite(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	if origin == "null" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host || h.cors[origin]
}

// corsAllowedHeaders are the request headers a browser may send.
const corsAllowedHeaders = "Authorization, Content-Type, Accept, Accept-Language, If-None-Match, If-Modified-Since, X-Request-Id, X-Idempotency-Key, Idempotency-Key"

// preflight answers an OPTIONS preflight from cors_origins: 204 with the
// allow headers for an allowed origin, 204 without them otherwise (the
// browser then blocks the call).
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	if h.cors[r.Header.Get("Origin")] {
		hdr.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
		allowed := corsAllowedHeaders
		// x-ext-* headers requested by the page are allowed too.
		for _, f := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
			f = strings.ToLower(strings.TrimSpace(f))
			if strings.HasPrefix(f, "x-ext-") && validHeaderName(f) {
				allowed += ", " + f
			}
		}
		hdr.Set("Access-Control-Allow-Headers", allowed)
		hdr.Set("Access-Control-Max-Age", "600")
	}
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
