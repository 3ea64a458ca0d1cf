package registryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// kvServer answers POST /v1/internal/storage the way registryd does
// (json.Encoder, so a trailing newline) and counts the TCP connections
// clients open to it.
func kvServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	big := strings.Repeat("x", 32<<10) // past net/http's 4 KiB buffer: a chunked reply
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req StorageRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch req.Key {
		case "missing":
			w.WriteHeader(http.StatusNotFound)
			var eb ErrorBody
			eb.Error.Code, eb.Error.Message = "not_found", "key not found"
			json.NewEncoder(w).Encode(eb)
		case "big":
			json.NewEncoder(w).Encode(StorageResponse{Item: &StorageItem{Namespace: req.Namespace, Key: req.Key, Value: json.RawMessage(`"` + big + `"`), Revision: 1}})
		default:
			json.NewEncoder(w).Encode(StorageResponse{Item: &StorageItem{Namespace: req.Namespace, Key: req.Key, Value: json.RawMessage(`{"n":1}`), Revision: 1}})
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestStorageCallsReuseOneConnection: sequential KV calls from one client
// go over one keep-alive connection, whatever the reply — a small one, a
// chunked one larger than the decoder reads at once, or an error.
func TestStorageCallsReuseOneConnection(t *testing.T) {
	for _, c := range []struct {
		name string
		key  string
	}{
		{"small replies reuse the connection", "k"},
		{"chunked replies larger than a read buffer reuse the connection", "big"},
		{"error replies reuse the connection", "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, conns := kvServer(t)
			cl := New(srv.URL, "tok", nil)
			for i := 0; i < 50; i++ {
				_, err := cl.Storage(context.Background(), StorageRequest{Op: StorageGet, Namespace: "ns", Key: c.key})
				if c.key == "missing" {
					if !IsCode(err, "not_found") {
						t.Fatalf("call %d: %v, want not_found", i, err)
					}
				} else if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Fatalf("50 sequential calls opened %d connections, want 1", n)
			}
		})
	}
}

// TestConcurrentStorageCallsKeepTheirConnections: guests calling KV at
// once (16 at a time, many rounds) reuse their connections between rounds
// instead of net/http's default of keeping two idle ones and redialling the
// rest.
func TestConcurrentStorageCallsKeepTheirConnections(t *testing.T) {
	const workers, rounds = 16, 20
	srv, conns := kvServer(t)
	cl := New(srv.URL, "tok", nil)
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := cl.Storage(context.Background(), StorageRequest{Op: StorageGet, Namespace: "ns", Key: fmt.Sprint(w)}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// A connection goes back to the idle pool a moment after its reply is
	// read, so a round that starts at once may dial one or two more than
	// the workers; without keep-alive it was 251.
	if n := conns.Load(); n > 2*workers {
		t.Fatalf("%d rounds of %d concurrent calls opened %d connections, want at most %d", rounds, workers, n, 2*workers)
	}
}
