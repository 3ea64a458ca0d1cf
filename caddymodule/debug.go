package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/extedge/extedge/caddymodule/auth"
	"github.com/extedge/extedge/internal/debuglog"
	"github.com/extedge/extedge/internal/manifest"
)

// debugHeartbeat is how often an idle debug stream sends an SSE comment,
// so proxies keep the connection open.
const debugHeartbeat = 15 * time.Second

// debugBlock bounds one blocking XREAD: a blocked read is not interrupted
// when the client goes away, so it is kept short.
const debugBlock = time.Second

// serveDebug streams /api/ext-debug/stream?extension={name} as Server-Sent
// Events: the debug stream of that extension for the caller's own tenant
// (the tenant comes only from authentication, never from the query). It
// needs `extension:debug` in `perms` and the Redis of rate_limit; without
// Redis it answers 503 debug_unavailable. Each event is `id: <stream id>`,
// `event: log`, `data: {the entry's fields}`; a reconnect with
// Last-Event-ID resumes after that id.
func (h *Handler) serveDebug(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := requestID(r)
	fail := func(ge *gatewayError) {
		writeError(w, rid, ge)
		observeRequest(routeDebug, ge.code, start)
	}
	if r.Method != http.MethodGet {
		ge := newError(codeMethodNotAllowed, "method not allowed")
		ge.allow = "GET"
		fail(ge)
		return
	}
	ext := r.URL.Query().Get("extension")
	if !manifest.ValidName(ext) {
		fail(newError(codeExtensionNotFound, "no such extension"))
		return
	}
	id, err := h.auth.Authenticate(r)
	if err != nil {
		fail(newError(codeUnauthenticated, "missing or invalid credentials"))
		return
	}
	if !id.MayUse(ext) || !id.Has(auth.PermDebug) {
		fail(newError(codeForbidden, "the token lacks "+auth.PermDebug))
		return
	}
	client := h.state.limiter.client
	if client == nil {
		fail(newError(codeDebugUnavailable, "no debug stream is configured"))
		return
	}
	key := debuglog.StreamKey(id.Tenant, ext)
	// Start after the newest entry, resolved now rather than with "$", so
	// lines added right after the client sees ": connected" are not lost.
	last := "0-0"
	if v := r.Header.Get("Last-Event-ID"); validStreamID(v) {
		last = v
	} else if msgs, err := client.XRevRangeN(r.Context(), key, "+", "-", 1).Result(); err == nil && len(msgs) == 1 {
		last = msgs[0].ID
	} else if err != nil {
		fail(newError(codeDebugUnavailable, "the debug stream is unavailable"))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Set("X-Request-Id", rid)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_, _ = w.Write([]byte(": connected\n\n"))
	_ = rc.Flush()
	observeRequest(routeDebug, "ok", start)

	ctx := r.Context()
	lastWrite := time.Now()
	for ctx.Err() == nil {
		res, err := client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 100, Block: debugBlock}).Result()
		if errors.Is(err, redis.Nil) {
			if time.Since(lastWrite) >= debugHeartbeat {
				if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
					return
				}
				_ = rc.Flush()
				lastWrite = time.Now()
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("reading debug stream", zap.Error(err))
				_, _ = w.Write([]byte("event: error\ndata: {\"code\":\"" + codeDebugUnavailable + "\"}\n\n"))
				_ = rc.Flush()
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		var buf []byte
		for _, s := range res {
			for _, m := range s.Messages {
				data, _ := json.Marshal(m.Values)
				buf = append(buf, "id: "+m.ID+"\nevent: log\ndata: "...)
				buf = append(buf, data...)
				buf = append(buf, "\n\n"...)
				last = m.ID
			}
		}
		if _, err := w.Write(buf); err != nil {
			return
		}
		_ = rc.Flush()
		lastWrite = time.Now()
	}
}

// validStreamID reports a Redis stream id "ms-seq".
func validStreamID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	return ok && digits(ms, 20) && digits(seq, 20)
}

func digits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
