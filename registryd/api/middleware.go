package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extedge/extedge/internal/tenantid"
	"github.com/extedge/extedge/registryd/store"
)

type principalKey struct{}

// principalOf returns the authenticated caller.
func principalOf(r *http.Request) *store.Principal {
	p, _ := r.Context().Value(principalKey{}).(*store.Principal)
	return p
}

// auth requires a bearer token of one of roles.
func (s *Server) auth(roles []string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			writeCode(w, codeUnauthorized, "missing bearer token", nil)
			return
		}
		p, err := s.cfg.DB.Authenticate(r.Context(), token)
		if errors.Is(err, store.ErrBadToken) {
			writeCode(w, codeUnauthorized, "invalid token", nil)
			return
		}
		if errors.Is(err, store.ErrTokenExpired) {
			writeCode(w, codeUnauthorized, "token expired", nil)
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !slices.Contains(roles, p.Role) {
			writeCode(w, codeForbidden, "this token's role may not call this API", nil)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// tenantParam validates {tenant} and checks that the caller may act for
// it: platform admins for any tenant, tenant admins for their own.
func (s *Server) tenantParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.PathValue("tenant")
	if !tenantid.Valid(t) {
		writeCode(w, store.CodeInvalidRequest, "invalid tenant id", nil)
		return "", false
	}
	p := principalOf(r)
	if p.Role == store.RoleTenantAdmin && p.Tenant != t {
		writeCode(w, codeForbidden, "this token belongs to another tenant", nil)
		return "", false
	}
	return t, true
}

// statusWriter records the status and size of a reply.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardWriter captures what the mux's own 404/405 handler would write.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

// serve dispatches with recovery, JSON 404/405 replies, metrics and logs.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h, pattern := s.mux.Handler(r)
	route := pattern
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic in handler", zap.String("route", route), zap.Any("panic", v), zap.Stack("stack"))
			if sw.status == 0 {
				writeCode(sw, codeInternal, "internal error", nil)
			}
		}
		s.observe(r, route, sw.status, time.Since(start))
	}()
	if pattern == "" {
		route = "unmatched"
		d := &discardWriter{h: http.Header{}}
		h.ServeHTTP(d, r)
		if d.status == http.StatusMethodNotAllowed {
			if allow := d.h.Get("Allow"); allow != "" {
				sw.Header().Set("Allow", allow)
			}
			writeCode(sw, codeMethodNotAllowed, "method not allowed", nil)
			return
		}
		writeCode(sw, store.CodeNotFound, "no such API", nil)
		return
	}
	// Bound every request so a hung database cannot pile up goroutines;
	// the route table gives uploads a longer limit and streams none.
	if timeout, ok := s.timeouts[pattern]; !ok || timeout != noTimeout {
		if !ok {
			timeout = requestTimeout
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	// The mux (not h) serves, so that r.PathValue and r.Pattern are set.
	s.mux.ServeHTTP(sw, r)
}

// Request deadlines: ordinary API calls, and publishes (upload included).
const (
	requestTimeout = 30 * time.Second
	publishTimeout = 15 * time.Minute
)

// observe records metrics and logs one request. Successful reads log at
// debug level (resolve is hot); everything else at info, errors at warn.
func (s *Server) observe(r *http.Request, route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	code := strconv.Itoa(status)
	s.metrics.requests.WithLabelValues(route, code).Inc()
	s.metrics.latency.WithLabelValues(route).Observe(d.Seconds())
	level := zapcore.InfoLevel
	switch {
	case status >= 500:
		level = zapcore.WarnLevel
	case status < 400 && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		level = zapcore.DebugLevel
	}
	if ce := s.log.Check(level, "request"); ce != nil {
		ce.Write(zap.String("method", r.Method), zap.String("route", route), zap.Int("status", status),
			zap.Duration("duration", d), zap.String("remote", r.RemoteAddr))
	}
}
