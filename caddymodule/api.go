package caddymodule

import (
	"context"
	"encoding/json"
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
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/registryapi"
)

// serveAPI runs the §8.2 pipeline for /api/ext/{extension}/{path...}.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := requestID(r)
	code := h.callExtension(w, r, rid)
	observeRequest(routeAPI, code, start)
}

// callExtension returns the outcome code for metrics ("ok" on success).
func (h *Handler) callExtension(w http.ResponseWriter, r *http.Request, rid string) string {
	fail := func(ge *gatewayError) string {
		writeError(w, rid, ge)
		return ge.code
	}
	h.corsHeaders(w, r)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.preflight(w, r)
		return "preflight"
	}

	// 1. The extension id must be a valid name; the rest is the endpoint path.
	rest := r.URL.EscapedPath()[len(prefixAPI):]
	ext, sub, _ := strings.Cut(rest, "/")
	sub = "/" + sub
	if !manifest.ValidName(ext) {
		return fail(newError(codeExtensionNotFound, "no such extension"))
	}

	// 2. Authenticate.
	id, err := h.auth.Authenticate(r)
	if err != nil {
		if ce := h.logger.Check(zapcore.DebugLevel, "unauthenticated"); ce != nil {
			ce.Write(zap.String("request_id", rid), zap.Error(err))
		}
		return fail(newError(codeUnauthenticated, "missing or invalid credentials"))
	}
	if id.Extension != "" && id.Extension != ext {
		return fail(newError(codeForbidden, "the token is not valid for this extension"))
	}
	if h.Auth.RequirePermissions {
		need := auth.PermWrite
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			need = auth.PermRead
		}
		if !id.Has(need) {
			return fail(newError(codeForbidden, "the token lacks "+need))
		}
	}

	// 3. Rate limits: per tenant, then per tenant+extension.
	if ge := h.checkRateLimits(r.Context(), id.Tenant, ext); ge != nil {
		return fail(ge)
	}

	// 4. Resolve the install.
	inst, err := h.state.registry.Resolve(r.Context(), id.Tenant, ext)
	switch {
	case errors.Is(err, registryapi.ErrNotInstalled):
		return fail(newError(codeNotInstalled, "the extension is not installed for this tenant"))
	case err != nil:
		return fail(newError(codeRegistryUnavailable, "the extension registry is unavailable"))
	}

	// 5. Match the endpoint.
	match, allow, found := inst.Router.Match(r.Method, sub)
	if !found {
		if len(allow) > 0 {
			ge := newError(codeMethodNotAllowed, "method not allowed for this endpoint")
			ge.allow = strings.Join(allow, ", ")
			return fail(ge)
		}
		return fail(newError(codeEndpointNotFound, "no such endpoint"))
	}

	// 6. Install quotas.
	release, retry, ok := h.state.quotas.acquire(inst.InstallID, inst.Quotas)
	if !ok {
		rateDecisions.WithLabelValues("quota", "deny", "memory").Inc()
		ge := newError(codeQuotaExceeded, "the install's quota is exhausted")
		ge.retryAfter = max(retry, time.Second)
		return fail(ge)
	}
	defer release()

	// 7. Body.
	body, ge := h.readBody(r)
	if ge != nil {
		return fail(ge)
	}

	// 8. Envelope.
	envelope, err := h.buildEnvelope(r, rid, id, ext, inst, match, body, sub)
	if err != nil {
		h.logger.Error("building execute envelope", zap.String("request_id", rid), zap.Error(err))
		return fail(newError(codeInternal, "internal error"))
	}

	// 9. Runner.
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.Timeout)+deadlineGrace)
	defer cancel()
	res, err := h.state.runners.Execute(ctx, inst.ContentHash, envelope, h.MaxResponseBody)
	if err != nil {
		return fail(h.executeError(r, rid, err))
	}

	// 10. Reply.
	if res.Err != nil {
		if ce := h.logger.Check(zapcore.DebugLevel, "runner error"); ce != nil {
			ce.Write(zap.String("request_id", rid), zap.String("runner", res.Runner),
				zap.String("code", res.Err.Code), zap.String("message", res.Err.Message))
		}
		return fail(runnerError(res.Err))
	}
	writeGuestResponse(w, r, rid, res.Response)
	return "ok"
}

func (h *Handler) executeError(r *http.Request, rid string, err error) *gatewayError {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return newError(codeTimeout, "the extension handler did not answer in time")
	case errors.Is(err, context.Canceled) || r.Context().Err() != nil:
		// The client went away; nobody reads this.
		return &gatewayError{code: "client_closed", status: 499, message: "client closed request"}
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
			return nil, &gatewayError{code: "bad_request", status: http.StatusBadRequest, message: "the request body could not be read"}
		}
	}
	if len(buf) == 0 {
		return nil, nil
	}
	return buf, nil
}

// buildEnvelope builds the §6.2 execute request. context.extension_id is
// the extension's name (runnerd keys module caches and the debug stream
// by it).
func (h *Handler) buildEnvelope(r *http.Request, rid string, id *auth.Identity, ext string, inst *registryapi.ResolvedInstall, m manifest.Match, body []byte, sub string) ([]byte, error) {
	timeout := time.Duration(h.Timeout)
	if ms := m.Endpoint.TimeoutMS; ms > 0 && time.Duration(ms)*time.Millisecond < timeout {
		timeout = time.Duration(ms) * time.Millisecond
	}
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
	path := sub
	if p, err := unescapePath(sub); err == nil {
		path = p
	}
	req := execapi.Request{
		Context: execapi.Context{
			RequestID:   rid,
			TenantID:    id.Tenant,
			ExtensionID: ext,
			InstallID:   inst.InstallID,
			VersionID:   inst.Version.ID,
			ContentHash: inst.ContentHash,
		},
		HTTP: execapi.HTTPRequest{
			Method:  r.Method,
			Path:    path,
			Query:   query,
			Headers: guestRequestHeaders(r, rid, id.Tenant, ext, idempotencyKey(r, id.Tenant, ext)),
			Body:    body,
		},
		Endpoint: execapi.Endpoint{
			Method:  m.Endpoint.Method,
			Path:    m.Endpoint.Path,
			Handler: m.Endpoint.Handler,
			Params:  m.Params,
		},
		Limits:          execapi.Limits{TimeoutMS: int(timeout / time.Millisecond)},
		Config:          inst.Config,
		Capabilities:    inst.Capabilities,
		EgressAllowlist: inst.EgressAllowlist,
		SecretEnvelope:  inst.SecretEnvelope,
	}
	if req.Capabilities == nil {
		req.Capabilities = []string{}
	}
	if hasCapability(inst.Capabilities, "user.read") && id.UserID != "" {
		req.User = &execapi.User{ID: id.UserID, Email: id.Email, Name: id.Name, Type: id.UserType}
	}
	return json.Marshal(&req)
}

func hasCapability(caps []string, want string) bool {
	for _, c := range caps {
		if strings.TrimPrefix(c, "cap:") == want {
			return true
		}
	}
	return false
}

func unescapePath(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	return url.PathUnescape(p)
}

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
	noBody := r.Method == http.MethodHead || resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified || resp.Status < 200
	if !noBody {
		h["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	}
	w.WriteHeader(resp.Status)
	if !noBody && len(resp.Body) > 0 {
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
