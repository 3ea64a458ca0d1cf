// Package registry benchmarks registryd (issue 3's closing numbers):
// resolve latency (p50/p99, warm pool, data in Postgres) and publish
// throughput for a 5 MB bundle. Each is measured next to a baseline in the
// same run and the ratio is reported:
//
//   - resolve vs a handler doing one `SELECT 1` through the same pool and
//     HTTP stack (the floor of any database-backed request);
//   - publish vs writing the same bytes to the same blob store alone.
//
// BenchmarkStorage (storage_test.go) reports the CPU per KV op (get, put,
// list) of registryd and of PostgreSQL.
//
// Run: go test -run '^$' -bench . -benchtime 3s ./bench/registry/
package registry_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/api"
	"github.com/extedge/extedge/registryd/publish"
	"github.com/extedge/extedge/registryd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	db     *store.DB
	srv    *httptest.Server
	blobs  blobstore.Store
	signer crypto.Signer
	admin  string
	svc    string
}

// setup starts registryd's handler on a fresh database; blobs nil means a
// local directory store.
func setup(b *testing.B, blobs blobstore.Store) *fixture {
	b.Helper()
	ctx := context.Background()
	pg := testenv.Postgres(b)
	db, err := store.Open(ctx, pg.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		b.Fatal(err)
	}
	if blobs == nil {
		dir, err := os.MkdirTemp("", "bench-blobs-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		blobs, _ = blobstore.NewLocal(dir)
	}
	signer, _ := signing.GenerateKey("")
	pub, _ := signing.MarshalPublicKeyPEM(signer.Public(), "Acme Inc.")
	trust, _ := signing.ParseTrustBundle(pub)
	keys, _ := secretbox.ParseKey(secretbox.GenerateKey())
	feed := store.NewFeed(db, nil)
	s := api.New(api.Config{DB: db, Feed: feed, Keys: keys,
		Publish: publish.New(db, publish.Config{Blobs: blobs, Trust: trust})})
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	// Baseline: same HTTP stack and pool, one trivial query.
	mux.HandleFunc("GET /baseline/select1", func(w http.ResponseWriter, r *http.Request) {
		if err := db.Ping(r.Context()); err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	f := &fixture{db: db, srv: httptest.NewServer(mux), blobs: blobs, signer: signer}
	b.Cleanup(f.srv.Close)
	f.admin, _, _ = db.CreateToken(ctx, store.RolePlatformAdmin, "", "")
	f.svc, _, _ = db.CreateToken(ctx, store.RoleService, "", "")
	return f
}

// pack builds a signed bundle of name@version with filler bytes of
// random (incompressible) data.
func (f *fixture) pack(b *testing.B, name, version string, filler int) (data, sig []byte) {
	b.Helper()
	dir := b.TempDir()
	man, _ := json.Marshal(map[string]any{
		"name": name, "publisher": "Acme Inc.", "version": version, "runtime": "wasm@1",
		"capabilities": []string{"http.fetch", "storage.kv", "secrets.get"},
		"ui":           map[string]any{"type": "iframe", "entry": "ui/index.html"},
		"api": map[string]any{"endpoints": []map[string]any{
			{"method": "GET", "path": "/items", "handler": "dist/main.wasm"},
			{"method": "GET", "path": "/items/:id", "handler": "dist/main.wasm"},
		}},
	})
	fill := make([]byte, filler)
	_, _ = rand.Read(fill)
	for p, c := range map[string][]byte{"manifest.json": man, "dist/main.wasm": []byte("\x00asm\x01\x00\x00\x00"), "ui/index.html": []byte("<html>"), "ui/blob.bin": fill} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, c, 0o644)
	}
	var buf bytes.Buffer
	hash, err := bundle.Pack(dir, &buf)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := signing.Sign(f.signer, hash)
	return buf.Bytes(), s.Marshal()
}

func (f *fixture) publish(data, sig []byte) (int, error) {
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/bundles", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+f.admin)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(registryapi.SignatureHeader, base64.StdEncoding.EncodeToString(sig))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// latencies runs get in parallel b.N times and reports p50/p99 in µs.
func latencies(b *testing.B, url, token string) (p50, p99 time.Duration) {
	b.Helper()
	var mu sync.Mutex
	all := make([]time.Duration, 0, b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(start))
		}
		mu.Lock()
		all = append(all, local...)
		mu.Unlock()
	})
	b.StopTimer()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return 0, 0
	}
	return all[len(all)*50/100], all[min(len(all)-1, len(all)*99/100)]
}

// BenchmarkResolve measures GET /v1/resolve (an install with a secret, so
// the envelope is sealed on every reply) against the SELECT 1 baseline.
func BenchmarkResolve(b *testing.B) {
	f := setup(b, nil)
	ctx := context.Background()
	data, sig := f.pack(b, "com.acme.bench", "1.0.0", 1024)
	if st, err := f.publish(data, sig); err != nil || st != 201 {
		b.Fatalf("publish: %d %v", st, err)
	}
	c := registryapi.New(f.srv.URL, f.admin, nil)
	if _, err := c.PutInstall(ctx, "tenant-1", "com.acme.bench", registryapi.InstallRequest{Version: "1.0.0", GrantedCaps: []string{"http.fetch", "secrets.get"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PutSecrets(ctx, "tenant-1", "com.acme.bench", map[string]string{"API_KEY": "k"}); err != nil {
		b.Fatal(err)
	}
	var base50, base99 time.Duration
	b.Run("baseline-select1", func(b *testing.B) {
		base50, base99 = latencies(b, f.srv.URL+"/baseline/select1", f.svc)
		b.ReportMetric(float64(base50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(base99.Microseconds()), "p99-µs")
	})
	b.Run("resolve", func(b *testing.B) {
		p50, p99 := latencies(b, f.srv.URL+"/v1/resolve/tenant-1/com.acme.bench", f.svc)
		b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
		if base50 > 0 {
			b.ReportMetric(float64(p50)/float64(base50), "p50-x-baseline")
			fmt.Printf("resolve p50 %v p99 %v; SELECT 1 baseline p50 %v p99 %v; ratio p50 %.2f\n", p50, p99, base50, base99, float64(p50)/float64(base50))
		}
	})
}

// BenchmarkPublish5MB publishes distinct 5 MB bundles one after another
// (b.SetBytes gives MB/s) next to writing the same bytes to the blob store
// alone, on a local directory store and on MinIO.
func BenchmarkPublish5MB(b *testing.B) {
	b.Run("file", func(b *testing.B) { benchPublish(b, setup(b, nil)) })
	b.Run("minio", func(b *testing.B) {
		m := testenv.SharedMinIO(b)
		blobs, err := blobstore.Open(m.URL())
		if err != nil {
			b.Fatal(err)
		}
		benchPublish(b, setup(b, blobs))
	})
}

var versionSeq int

func benchPublish(b *testing.B, f *fixture) {
	const size = 5 << 20
	var baseline float64 // seconds per op
	b.Run("baseline-blob-write", func(b *testing.B) {
		data, _ := f.pack(b, "com.acme.base", "1.0.0", size)
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			versionSeq++
			key := fmt.Sprintf("sha256/%064x/bundle.tar.zst", versionSeq)
			if err := f.blobs.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
				b.Fatal(err)
			}
		}
		baseline = time.Since(start).Seconds() / float64(b.N)
	})
	b.Run("publish", func(b *testing.B) {
		type bun struct{ data, sig []byte }
		buns := make([]bun, b.N)
		for i := range buns {
			versionSeq++
			buns[i].data, buns[i].sig = f.pack(b, "com.acme.big", fmt.Sprintf("1.0.%d", versionSeq), size)
		}
		b.SetBytes(int64(len(buns[0].data)))
		b.ResetTimer()
		start := time.Now()
		for i := range buns {
			st, err := f.publish(buns[i].data, buns[i].sig)
			if err != nil || st != 201 {
				b.Fatalf("publish: %d %v", st, err)
			}
		}
		per := time.Since(start).Seconds() / float64(b.N)
		b.StopTimer()
		b.ReportMetric(per*1000, "ms/publish")
		if baseline > 0 {
			b.ReportMetric(per/baseline, "x-blob-write")
			fmt.Printf("publish 5 MB (%s): %.1f ms/op (%.1f MB/s); blob write alone %.1f ms/op; ratio %.2f\n",
				b.Name(), per*1000, float64(len(buns[0].data))/per/1e6, baseline*1000, per/baseline)
		}
	})
}
