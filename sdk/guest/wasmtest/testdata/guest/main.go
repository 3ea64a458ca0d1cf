// Command guest exercises every part of the SDK inside a real wasm
// instance; wasmtest drives it on the runner's real engine and host
// (runnerd/runnertest). The vendor's base URL comes from the install
// config ("vendor_url").
package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/extedge/extedge/sdk/guest"
)

func init() {
	guest.Handle("dist/main#named", func(r *guest.Request) guest.Response {
		return guest.Text(200, "named")
	})
	guest.Route("GET", "/fetch", fetch)
	guest.Route("GET", "/fetch-many", fetchMany)
	guest.Route("PUT", "/kv/:key", kvPut)
	guest.Route("GET", "/kv/:key", kvGet)
	guest.Route("GET", "/denied", denied)
	guest.Route("GET", "/panic", func(*guest.Request) guest.Response { panic("kaboom") })
	guest.Route("POST", "/echo", echo)
	guest.Route("GET", "/goroutines", goroutines)
	guest.Route("GET", "/sleep", func(*guest.Request) guest.Response {
		start := time.Now()
		time.Sleep(5 * time.Millisecond)
		return guest.JSON(200, map[string]bool{"slept": time.Since(start) >= 5*time.Millisecond})
	})
	guest.Route("GET", "/big", func(r *guest.Request) guest.Response {
		return guest.Text(200, strings.Repeat("b", r.QueryInt("n", 1)))
	})
}

// vendorURL is the vendor API's base URL from the install config.
func vendorURL(r *guest.Request) string {
	var cfg struct {
		VendorURL string `json:"vendor_url"`
	}
	_ = r.DecodeConfig(&cfg)
	return cfg.VendorURL
}

func fetch(r *guest.Request) guest.Response {
	key, err := guest.Secret("api_key")
	if err != nil {
		return guest.ErrorFrom(err)
	}
	resp, err := guest.Fetch(guest.FetchRequest{
		URL:     vendorURL(r) + "/items?page=" + r.Query("page"),
		Headers: map[string]string{"authorization": "Bearer " + key},
	})
	if err != nil {
		return guest.ErrorFrom(err)
	}
	var items []string
	if err := resp.DecodeJSON(&items); err != nil {
		return guest.ErrorFrom(err)
	}
	guest.Log.Infof("fetched %d items", len(items))
	if err := guest.Metric("items_fetched", float64(len(items)), guest.Counter, map[string]string{"src": "vendor"}); err != nil {
		return guest.ErrorFrom(err)
	}
	return guest.JSON(200, map[string]any{"upstream_status": resp.Status, "items": items})
}

// fetchMany makes many host calls with large replies, so the host's
// reentrant alloc calls grow memory and trigger collections while host
// calls are in flight.
func fetchMany(r *guest.Request) guest.Response {
	n, size := r.QueryInt("n", 50), r.QueryInt("size", 256<<10)
	total := 0
	for i := 0; i < n; i++ {
		resp, err := guest.Fetch(guest.FetchRequest{URL: fmt.Sprintf("%s/blob?size=%d&fill=%d", vendorURL(r), size, i%26)})
		if err != nil {
			return guest.ErrorFrom(err)
		}
		want := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		if !bytes.Equal(resp.Body, want) {
			return guest.Error(500, "corrupt", fmt.Sprintf("reply %d corrupted", i))
		}
		total += len(resp.Body)
	}
	return guest.JSON(200, map[string]int{"calls": n, "bytes": total})
}

func kvPut(r *guest.Request) guest.Response {
	var v any
	if err := r.DecodeJSON(&v); err != nil {
		return guest.Error(400, "bad_json", err.Error())
	}
	rev, err := guest.KV.Put("items", r.Param("key"), v, guest.IfRevision(int64(r.QueryInt("if_revision", 0))))
	if err != nil {
		return guest.ErrorFrom(err)
	}
	return guest.JSON(200, map[string]int64{"revision": rev})
}

func kvGet(r *guest.Request) guest.Response {
	it, err := guest.KV.Get("items", r.Param("key"))
	if err != nil {
		return guest.ErrorFrom(err)
	}
	return guest.JSON(200, it)
}

func denied(*guest.Request) guest.Response {
	_, err := guest.Fetch(guest.FetchRequest{URL: "https://evil.example"})
	if guest.IsCode(err, guest.CodeEgressDenied) {
		return guest.ErrorFrom(err)
	}
	return guest.Text(500, fmt.Sprintf("unexpected: %v", err))
}

func echo(r *guest.Request) guest.Response {
	var body map[string]any
	if err := r.DecodeJSON(&body); err != nil {
		return guest.Error(400, "bad_json", err.Error())
	}
	body["user"] = r.User.Name
	return guest.JSON(200, body).WithHeader("x-echo", "1")
}

// goroutines fans work out and waits for it: handlers may use goroutines
// as long as they finish before the handler returns.
func goroutines(r *guest.Request) guest.Response {
	n := r.QueryInt("n", 8)
	results := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- i * i
		}()
	}
	wg.Wait()
	close(results)
	sum := 0
	for v := range results {
		sum += v
	}
	return guest.JSON(200, map[string]int{"sum": sum})
}

func main() {}
