package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/registryd/store"
)

// changesBatch is how many events a stream reads from change_log at once.
const changesBatch = 500

// keepAlive is how often an idle stream gets an SSE comment, so proxies
// and clients see the connection alive.
const keepAlive = 15 * time.Second

// changes is GET /v1/changes: Server-Sent Events from change_log.
//
// Without Last-Event-ID (header, or ?last_event_id=) the stream starts at
// the newest change; with it, it replays everything after that id first,
// so a client that reconnects misses nothing. Each event is
// `id: <change id>`, `event: <type>`, `data: <registryapi.Change JSON>`.
func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	wake, unsubscribe := s.cfg.Feed.Subscribe()
	defer unsubscribe()

	lastStr := r.Header.Get("Last-Event-ID")
	if lastStr == "" {
		lastStr = r.URL.Query().Get("last_event_id")
	}
	var last int64
	if lastStr != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(lastStr), 10, 64)
		if err != nil || n < 0 {
			writeCode(w, store.CodeInvalidRequest, "Last-Event-ID must be a change id", nil)
			return
		}
		last = n
	} else {
		n, err := s.cfg.DB.LatestChangeID(ctx)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		last = n
	}

	rc := http.NewResponseController(w)
	// A stream lives for hours: lift the server's read and write timeouts
	// (an expiring read deadline would cancel the request context).
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// retry: tells EventSource clients how soon to reconnect.
	if _, err := fmt.Fprintf(w, "retry: 1000\n: stream from %d\n\n", last); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	s.metrics.feedClients.Inc()
	defer s.metrics.feedClients.Dec()

	ticker := time.NewTicker(keepAlive)
	defer ticker.Stop()
	for {
		events, err := s.cfg.DB.ChangesSince(ctx, last, changesBatch)
		if err != nil {
			if ctx.Err() == nil {
				// End the stream; the client reconnects with Last-Event-ID.
				s.log.Warn("change feed read failed", zap.Error(err))
			}
			return
		}
		for _, ev := range events {
			if err := registryapi.WriteChange(w, ev); err != nil {
				return
			}
			last = ev.ID
		}
		if len(events) > 0 {
			s.metrics.feedEvents.Add(float64(len(events)))
			if rc.Flush() != nil {
				return
			}
			if len(events) == changesBatch {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case <-wake:
		case <-ticker.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
