package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/bench/internal/procstat"
	"github.com/extedge/extedge/internal/registryapi"
)

// BenchmarkStorage measures POST /v1/internal/storage (the runner's KV
// calls) one after another on one keep-alive connection, and reports the
// CPU each op costs this process (registryd's handler and the client) and
// the PostgreSQL server, read from /proc around the timed loop.
//
// Run: go test -run '^$' -bench Storage -benchtime 3000x ./bench/registry/
func BenchmarkStorage(b *testing.B) {
	f := setup(b, nil)
	ctx := context.Background()
	data, sig := f.pack(b, "com.acme.kv", "1.0.0", 1024)
	if st, err := f.publish(data, sig); err != nil || st != 201 {
		b.Fatalf("publish: %d %v", st, err)
	}
	admin := registryapi.New(f.srv.URL, f.admin, nil)
	inst, err := admin.PutInstall(ctx, "tenant-1", "com.acme.kv", registryapi.InstallRequest{Version: "1.0.0", GrantedCaps: []string{"storage.kv"}})
	if err != nil {
		b.Fatal(err)
	}
	c := registryapi.New(f.srv.URL, f.svc, nil)
	req := registryapi.StorageRequest{TenantID: "tenant-1", InstallID: inst.ID, Namespace: "agreements"}
	val := json.RawMessage(`{"id":"a-1","title":"Master services agreement","status":"active"}`)
	for i := 0; i < 20; i++ {
		r := req
		r.Op, r.Key, r.Value = registryapi.StoragePut, fmt.Sprintf("agreement-%02d", i), val
		if _, err := c.Storage(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	pgDir := postgresDir(b, f)
	ops := []struct {
		name string
		req  registryapi.StorageRequest
	}{
		{"get", registryapi.StorageRequest{Op: registryapi.StorageGet, Key: "agreement-07"}},
		{"put", registryapi.StorageRequest{Op: registryapi.StoragePut, Key: "counter", Value: val}},
		{"list", registryapi.StorageRequest{Op: registryapi.StorageList, Limit: 10}},
	}
	for _, op := range ops {
		r := op.req
		r.TenantID, r.InstallID, r.Namespace = req.TenantID, req.InstallID, req.Namespace
		b.Run(op.name, func(b *testing.B) {
			if _, err := c.Storage(ctx, r); err != nil { // warm the statement cache and connection
				b.Fatal(err)
			}
			selfBefore, pgBefore := procCPU(os.Getpid(), ""), procCPU(0, pgDir)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := c.Storage(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			wall := time.Since(start)
			b.StopTimer()
			self, pg := procCPU(os.Getpid(), "")-selfBefore, procCPU(0, pgDir)-pgBefore
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(per(self), "registryd+client-cpu-µs/op")
			b.ReportMetric(per(pg), "postgres-cpu-µs/op")
			fmt.Printf("kv %s: %d ops, %.0f µs/op wall; CPU µs/op: registryd+client %.0f, postgres %.0f, sum %.0f\n",
				op.name, b.N, per(wall), per(self), per(pg), per(self+pg))
		})
	}
}

// postgresDir is the directory of the test's PostgreSQL server (the parent
// of its socket directory), which its postmaster's command line names.
func postgresDir(b *testing.B, f *fixture) string {
	host := f.db.Pool.Config().ConnConfig.Host
	if !strings.HasPrefix(host, "/") {
		b.Fatalf("postgres is not on a Unix socket: %q", host)
	}
	return filepath.Dir(host)
}

// procCPU is the user+system CPU time of pid, or (pid 0) of the process
// whose command line mentions dir and of its children (a postmaster and
// its backends), from /proc.
func procCPU(pid int, dir string) time.Duration {
	procs := procstat.All()
	if pid != 0 {
		if p := procs[pid]; p != nil {
			return p.CPU
		}
		return 0
	}
	root := 0
	{
		for p, in := range procs {
			if len(in.Cmdline) > 0 && strings.Contains(strings.Join(in.Cmdline, "\x00"), dir) &&
				strings.Contains(filepath.Base(in.Cmdline[0]), "postgres") {
				root = p
				break
			}
		}
	}
	var sum time.Duration
	for p, in := range procs {
		if p == root || in.PPID == root {
			sum += in.CPU
		}
	}
	return sum
}
