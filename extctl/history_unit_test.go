package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, in string
		want     time.Time
		bad      bool
	}{
		{"empty is no bound", "", time.Time{}, false},
		{"a duration counts back from now", "90m", now.Add(-90 * time.Minute), false},
		{"d means days", "7d", now.Add(-7 * 24 * time.Hour), false},
		{"an RFC 3339 time stands as it is", "2026-12-01T08:30:00+01:00", time.Date(2026, 12, 1, 7, 30, 0, 0, time.UTC), false},
		{"a negative duration is refused", "-5m", time.Time{}, true},
		{"zero is refused", "0s", time.Time{}, true},
		{"words are refused", "yesterday", time.Time{}, true},
		{"days must be a whole number", "1.5d", time.Time{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseWhen("since", c.in, now)
			if c.bad {
				if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), "--since") {
					t.Fatalf("err = %v, want a usage error naming --since", err)
				}
				return
			}
			if err != nil || !got.Equal(c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestFollowReconnectsWithLastEventID: a dropped stream is reopened with
// the id of the last entry printed, so nothing is printed twice; a
// refusal on reconnect that is not 5xx ends the follow with its code.
func TestFollowReconnectsWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var seen []string // Last-Event-ID of each connection
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(seen)
		seen = append(seen, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		if r.URL.Path != debugStreamPath || r.URL.Query().Get("extension") != "com.acme.x" || r.Header.Get("Authorization") != "Bearer gw-token" {
			http.Error(w, "bad request", 400)
			return
		}
		if n == 2 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":"unauthenticated","message":"token expired"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": connected\n\n")
		fmt.Fprintf(w, "id: %d-0\nevent: log\ndata: {\"level\":\"info\",\"message\":\"line %d\"}\n\n", n+1, n+1)
		// Then the connection drops.
	}))
	defer srv.Close()
	d := &debugStream{url: srv.URL + debugStreamPath + "?extension=com.acme.x", token: "gw-token", hc: srv.Client()}
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := d.follow(ctx, &stderr, newLogPrinter(&stdout, false))
	var ce *codedError
	if !errors.As(err, &ce) || ce.code != "unauthenticated" {
		t.Fatalf("follow ended with %v, want the gateway's unauthenticated", err)
	}
	if got := strings.Join(seen, ","); got != ",1-0,2-0" {
		t.Fatalf("Last-Event-ID per connection = %q, want \",1-0,2-0\"", got)
	}
	if out := stdout.String(); strings.Count(out, "line 1") != 1 || strings.Count(out, "line 2") != 1 {
		t.Fatalf("printed %q", out)
	}
	if !strings.Contains(stderr.String(), "reconnecting") {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// TestFollowDropsASilentConnection: a connection that sends nothing, not
// even keep-alives, for the idle bound is dropped and reopened.
func TestFollowDropsASilentConnection(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		if n > 1 {
			w.WriteHeader(403)
			fmt.Fprint(w, `{"error":{"code":"forbidden","message":"stop here"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": connected\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent until the client gives up
	}))
	defer srv.Close()
	d := &debugStream{url: srv.URL + debugStreamPath + "?extension=com.acme.x", token: "t", hc: srv.Client(), idle: 300 * time.Millisecond}
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := d.follow(ctx, &stderr, newLogPrinter(&stdout, false))
	var ce *codedError
	if !errors.As(err, &ce) || ce.code != "forbidden" || conns != 2 {
		t.Fatalf("follow ended with %v after %d connections", err, conns)
	}
	if !strings.Contains(stderr.String(), "no data for 300ms") {
		t.Fatalf("stderr %q", stderr.String())
	}
}
