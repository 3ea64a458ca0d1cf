package caddymodule

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/debuglog"
	"github.com/extedge/extedge/internal/testenv"
)

func TestDebugStream(t *testing.T) {
	rds := testenv.Redis(t)
	g := newGateway(t, func(h *Handler, gw *gateway) { h.RateLimit = &RateLimitConfig{Redis: rds.URL()} })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.h.ServeHTTP(w, r, nextNotCalled) }))
	defer srv.Close()
	opts, _ := redis.ParseURL(rds.URL())
	rc := redis.NewClient(opts)
	defer rc.Close()
	url := srv.URL + pathDebug + "?extension=" + testExt

	t.Run("without extension:debug is forbidden", func(t *testing.T) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"perms": "extension:read"}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 403 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("streams the caller's tenant only", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"perms": "extension:debug"}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%v %v", resp, err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, ": connected") {
			t.Fatalf("first line %q", line)
		}
		// Another tenant's line first, then ours: only ours may arrive.
		rc.XAdd(ctx, &redis.XAddArgs{Stream: debuglog.StreamKey("tenant-b", testExt), Values: map[string]any{"message": "other tenant"}})
		rc.XAdd(ctx, &redis.XAddArgs{Stream: debuglog.StreamKey(testTenant, testExt), Values: map[string]any{"level": "info", "message": "hello"}})
		var got []string
		for len(got) < 3 {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading stream: %v (got %q)", err, got)
			}
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, line)
			}
		}
		if !strings.HasPrefix(got[0], "id: ") || got[1] != "event: log" || !strings.Contains(got[2], `"message":"hello"`) {
			t.Fatalf("event = %q", got)
		}
	})
	t.Run("without Redis is 503", func(t *testing.T) {
		g2 := newGateway(t, nil)
		r := httptest.NewRequest("GET", pathDebug+"?extension="+testExt, nil)
		r.Header.Set("Authorization", "Bearer "+token(t, jwt.MapClaims{"perms": "extension:debug"}))
		w := g2.do(r)
		if w.Code != 503 || errorCode(t, w) != "debug_unavailable" {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
	})
}
