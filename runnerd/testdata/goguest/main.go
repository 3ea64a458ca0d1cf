// Command goguest is a Go handler built with sdk/guest for the runner's
// tests and benchmarks (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared). Each
// route provokes one runner behaviour with a real Go runtime inside.
package main

import (
	"errors"
	"time"

	"github.com/extedge/extedge/sdk/guest"
)

var sink [][]byte

// calls counts /count calls in this instance: 1 on every call with a fresh
// instance, 1, 2, 3… with instance reuse (SPEC §6.5).
var calls int

// bump adds one to the counter at events/key (conditional writes, so
// concurrent deliveries are counted exactly) and returns the new value.
func bump(key string, extra map[string]any) (int, error) {
	for {
		var cur struct{ N int }
		var rev int64
		if it, err := guest.KV.Get("events", key); err == nil {
			_ = it.Decode(&cur)
			rev = it.Revision
		} else if !guest.IsCode(err, guest.CodeNotFound) {
			return 0, err
		}
		v := map[string]any{"n": cur.N + 1}
		for k, x := range extra {
			v[k] = x
		}
		_, err := guest.KV.Put("events", key, v, guest.IfRevision(rev))
		if guest.IsCode(err, guest.CodeRevisionMismatch) {
			continue
		}
		return cur.N + 1, err
	}
}

// Event handlers for the delivery tests (runnerd/deliveries_integration_test.go).
func init() {
	// test.count counts deliveries per event id, with the secret it
	// could read, proving deliveries get the install's secrets and KV.
	guest.OnEvent("test.count", func(ev *guest.Event) error {
		secret, _ := guest.Secret("api_key")
		_, err := bump("count:"+ev.ID, map[string]any{"secret": secret, "payload": ev.Payload, "install": ev.Context.InstallID})
		return err
	})
	// test.fail counts its attempts and always fails (a 500).
	guest.OnEvent("test.fail", func(ev *guest.Event) error {
		if _, err := bump("fail:"+ev.ID, nil); err != nil {
			return err
		}
		return errors.New("failing on purpose")
	})
	// test.slow marks its start, sleeps payload.ms, marks its end.
	guest.OnEvent("test.slow", func(ev *guest.Event) error {
		var p struct{ MS int }
		_ = ev.DecodePayload(&p)
		if _, err := bump("started:"+ev.ID, nil); err != nil {
			return err
		}
		time.Sleep(time.Duration(p.MS) * time.Millisecond)
		_, err := bump("done:"+ev.ID, nil)
		return err
	})
}

func init() {
	guest.Route("GET", "/hello", func(r *guest.Request) guest.Response {
		guest.Log.Infof("hello for %s", r.Context.TenantID)
		return guest.JSON(200, map[string]string{"path": r.HTTP.Path, "tenant": r.Context.TenantID})
	})
	guest.Route("GET", "/oom", func(r *guest.Request) guest.Response {
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	})
	guest.Route("GET", "/loop", func(r *guest.Request) guest.Response {
		n := 0
		for {
			n++
		}
	})
	guest.Route("GET", "/kv", func(r *guest.Request) guest.Response {
		if _, err := guest.KV.Put("ns", "k", map[string]int{"v": 1}); err != nil {
			return guest.ErrorFrom(err)
		}
		return guest.Text(200, "stored")
	})
	guest.Route("GET", "/kv-roundtrip", func(r *guest.Request) guest.Response {
		rev, err := guest.KV.Put("agreements", r.Query("key"), map[string]string{"by": r.Context.RequestID})
		if err != nil {
			return guest.ErrorFrom(err)
		}
		it, err := guest.KV.Get("agreements", r.Query("key"))
		if err != nil {
			return guest.ErrorFrom(err)
		}
		var v map[string]string
		if err := it.Decode(&v); err != nil {
			return guest.ErrorFrom(err)
		}
		return guest.JSON(200, map[string]any{"put_revision": rev, "get_revision": it.Revision, "value": v})
	})
	guest.Route("GET", "/secret", func(r *guest.Request) guest.Response {
		v, err := guest.Secret(r.Query("key"))
		if err != nil {
			return guest.ErrorFrom(err)
		}
		return guest.Text(200, v)
	})
	guest.Route("GET", "/fetch", func(r *guest.Request) guest.Response {
		resp, err := guest.Fetch(guest.FetchRequest{URL: r.Query("url")})
		if err != nil {
			return guest.ErrorFrom(err)
		}
		return guest.JSON(200, map[string]any{"upstream_status": resp.Status, "body": string(resp.Body)})
	})
	guest.Route("GET", "/count", func(*guest.Request) guest.Response {
		calls++
		return guest.JSON(200, map[string]int{"calls": calls})
	})
	guest.Route("GET", "/panic", func(*guest.Request) guest.Response { panic("boom") })
	guest.Route("GET", "/print", func(*guest.Request) guest.Response {
		println("to stderr from the go runtime")
		return guest.Text(200, "printed")
	})
}

func main() {}
