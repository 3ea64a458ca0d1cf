package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extedge/extedge/internal/debuglog"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

const historyExt, historyTenant = "com.example.cli", "tenant-a"

// historyRegistry is a registry with com.example.cli installed for
// tenant-a and n execution records stored for it, one a second ending a
// minute ago. Record i is a timeout when i%10 == 0, else ok with 200.
func historyRegistry(t *testing.T, n int) (*registry, []registryapi.ExecutionRecord) {
	t.Helper()
	r := startRegistry(t)
	bundlePath, sigPath, _ := packSigned(t, r.keys+"/publisher.key", nil, nil)
	r.admin(t, "publish", bundlePath, "--signature", sigPath)
	r.admin(t, "install", "--tenant", historyTenant, "--extension", historyExt)
	adminTok, _ := os.ReadFile(r.adminToken)
	in, err := registryapi.New(r.url, strings.TrimSpace(string(adminTok)), nil).GetInstall(t.Context(), historyTenant, historyExt)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Minute - time.Duration(n)*time.Second).Truncate(time.Millisecond)
	var recs []registryapi.ExecutionRecord
	for i := range n {
		rec := registryapi.ExecutionRecord{RequestID: fmt.Sprintf("req-%03d", i), TenantID: historyTenant, ExtensionID: historyExt,
			InstallID: in.ID, Endpoint: "GET /hello", StartedAt: start.Add(time.Duration(i) * time.Second), Outcome: "ok", HTTPStatus: 200,
			DurationMS: 2.5, CPUMS: 1, EgressBytes: 3}
		if i%10 == 0 {
			rec.Outcome, rec.HTTPStatus = "timeout", 0
		}
		rec.FinishedAt = rec.StartedAt.Add(2500 * time.Microsecond)
		recs = append(recs, rec)
	}
	service := r.token(t, "service.token", "--role", "service")
	tok, _ := os.ReadFile(service)
	if err := registryapi.New(r.url, strings.TrimSpace(string(tok)), nil).PostExecutions(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	return r, recs
}

// jsonLines decodes one JSON object per line.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" {
			vs = append(vs, decodeJSON[T](t, line))
		}
	}
	return vs
}

type logLine struct {
	Type string `json:"type"`
	registryapi.Execution
}

// TestLogsCommand: logs prints the newest --limit matching calls oldest
// first, walking every registry page for --limit 0, with the registry's
// filters; a tenant admin of another tenant is refused with its code.
func TestLogsCommand(t *testing.T) {
	r, recs := historyRegistry(t, 1203) // more than two pages of 500
	logs := func(args ...string) string {
		t.Helper()
		return mustRun(t, append(append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt}, args...), r.flags(r.tenantToken)...)...)
	}
	t.Run("--limit 0 walks every page: each record once, oldest first", func(t *testing.T) {
		lines := jsonLines[logLine](t, logs("--limit", "0", "--json"))
		if len(lines) != len(recs) {
			t.Fatalf("%d lines, want %d", len(lines), len(recs))
		}
		for i, l := range lines {
			if l.Type != "execution" || l.RequestID != recs[i].RequestID || l.Outcome != recs[i].Outcome {
				t.Fatalf("line %d = %+v, want %s", i, l, recs[i].RequestID)
			}
		}
	})
	t.Run("the default prints the newest 100 as a table", func(t *testing.T) {
		lines := strings.Split(strings.TrimSpace(logs()), "\n")
		if len(lines) != 101 || !strings.HasPrefix(lines[0], "STARTED") || !strings.Contains(lines[0], "OUTCOME") {
			t.Fatalf("%d lines, header %q", len(lines), lines[0])
		}
		first, last := lines[1], lines[100]
		if !strings.Contains(first, recs[len(recs)-100].RequestID) || !strings.Contains(last, recs[len(recs)-1].RequestID) ||
			!strings.Contains(last, "GET /hello") || !strings.Contains(last, "2.5ms") || !strings.Contains(last, "3 B") {
			t.Fatalf("first %q\nlast %q", first, last)
		}
	})
	t.Run("filters reach the registry", func(t *testing.T) {
		lines := jsonLines[logLine](t, logs("--outcome", "timeout", "--limit", "0", "--json"))
		if len(lines) != 121 {
			t.Fatalf("%d timeouts, want 121", len(lines))
		}
		for _, l := range lines {
			if l.Outcome != "timeout" {
				t.Fatalf("line %+v", l)
			}
		}
		one := jsonLines[logLine](t, logs("--request-id", "req-042", "--status", "2xx", "--endpoint", "GET /hello", "--json"))
		if len(one) != 1 || one[0].RequestID != "req-042" {
			t.Fatalf("request id filter: %+v", one)
		}
		recent := jsonLines[logLine](t, logs("--since", "2m", "--limit", "0", "--json"))
		if len(recent) == 0 || len(recent) > 61 || recent[len(recent)-1].RequestID != recs[len(recs)-1].RequestID {
			t.Fatalf("--since 2m gave %d records", len(recent))
		}
		if out := logs("--since", recs[len(recs)-1].StartedAt.Add(time.Second).Format(time.RFC3339Nano)); out != "" {
			t.Fatalf("nothing matches, but logs printed %q", out)
		}
	})
	t.Run("another tenant's admin is forbidden", func(t *testing.T) {
		other := r.token(t, "tenant-b.token", "--role", "tenant_admin", "--tenant", "tenant-b")
		code, _, errOut := run(t, append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt}, r.flags(other)...)...)
		oneErrorLine(t, code, errOut, "forbidden")
	})
	t.Run("a bad filter is the registry's invalid_request", func(t *testing.T) {
		code, _, errOut := run(t, append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt, "--status", "7xx"}, r.flags(r.tenantToken)...)...)
		if line := oneErrorLine(t, code, errOut, "invalid_request"); !strings.Contains(line, "field=status") {
			t.Fatalf("error line %q does not name the field", line)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"logs", "--tenant", historyTenant},
			{"logs", "--tenant", historyTenant, "--extension", historyExt, "--since", "yesterday"},
			{"logs", "--tenant", historyTenant, "--extension", historyExt, "--limit", "-1"},
			{"logs", "--tenant", historyTenant, "--extension", historyExt, "--follow"},
			{"logs", "--tenant", historyTenant, "--extension", historyExt, "--follow", "--gateway", "ftp://x"},
			{"usage", "--extension", historyExt},
			{"usage", "--tenant", historyTenant, "--extension", historyExt, "--since", "-5m"},
		} {
			if code, _, errOut := run(t, append(args, r.flags(r.tenantToken)...)...); code != 2 || !strings.Contains(errOut, "usage: extctl "+args[0]) {
				t.Errorf("%v: exit %d, %q", args, code, errOut)
			}
		}
	})
}

// TestUsageCommand: usage prints the per-minute sums of the stored
// records and their totals; --json is the registry's report.
func TestUsageCommand(t *testing.T) {
	r, recs := historyRegistry(t, 150)
	args := append([]string{"usage", "--tenant", historyTenant, "--extension", historyExt, "--since", "1h"}, r.flags(r.tenantToken)...)
	rep := decodeJSON[registryapi.UsageReport](t, mustRun(t, append(args, "--json")...))
	perMinute := map[time.Time]int64{}
	for _, rec := range recs {
		perMinute[rec.StartedAt.Truncate(time.Minute)]++
	}
	if len(rep.Minutes) != len(perMinute) || rep.Total.Invocations != 150 || rep.Total.Errors != 15 || rep.Total.EgressBytes != 450 || rep.Total.CPUMS != 150 {
		t.Fatalf("report %+v (want %d minutes)", rep, len(perMinute))
	}
	for _, m := range rep.Minutes {
		if perMinute[m.WindowStart] != m.Invocations {
			t.Fatalf("minute %s: %d invocations, want %d", m.WindowStart, m.Invocations, perMinute[m.WindowStart])
		}
	}
	out := mustRun(t, args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(perMinute)+2 || !strings.Contains(lines[0], "INVOCATIONS") || !strings.Contains(lines[0], "EGRESS BYTES") ||
		strings.Join(strings.Fields(lines[len(lines)-1]), " ") != "TOTAL 150 15 150.0 450" {
		t.Fatalf("usage printed:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLogsFollow: against a real stack (registryd on Postgres, Caddy with
// the extedge gateway, Redis), logs --follow prints the history, then a
// line a runner adds to the debug stream of the token's tenant (and not
// another tenant's), and stops cleanly with exit 0 when cancelled.
func TestLogsFollow(t *testing.T) {
	r, recs := historyRegistry(t, 3)
	rds := testenv.Redis(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	service := r.token(t, "gateway-service.token", "--role", "service")
	gw := startGateway(t, dir, r.url, service, filepath.Join(dir, "no-runner.sock"), write("runner.token", "runner-token"), rds.URL())
	caddy := gw.CaddyServer
	jwtFor := func(perms string) string { return gw.token(t, historyTenant, perms) }
	gwFlags := func(perms string) []string {
		return []string{"--follow", "--gateway", caddy.URL, "--gateway-token-file", write("gw-"+strings.ReplaceAll(perms, ":", "-")+".jwt", jwtFor(perms))}
	}
	opts, _ := redis.ParseURL(rds.URL())
	rc := redis.NewClient(opts)
	defer rc.Close()

	t.Run("a live line follows the history", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		c := &cli{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), ctx: ctx}
		args := append(append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt}, gwFlags("extension:debug")...), r.flags(r.tenantToken)...)
		done := make(chan int, 1)
		go func() { done <- c.main(args) }()
		testenv.WaitFor(t, 20*time.Second, func() error {
			select {
			case code := <-done:
				t.Fatalf("logs --follow ended with %d before following: %s\n%s", code, stderr.String(), caddy.Log())
			default:
			}
			if !strings.Contains(stderr.String(), "following the live debug stream") {
				return fmt.Errorf("not following yet: %q", stderr.String())
			}
			return nil
		})
		// As a runner would (runnerd/debugstream): another tenant's line, then ours.
		rc.XAdd(ctx, &redis.XAddArgs{Stream: debuglog.StreamKey("tenant-b", historyExt), Values: map[string]any{"level": "info", "message": "not yours"}})
		rc.XAdd(ctx, &redis.XAddArgs{Stream: debuglog.StreamKey(historyTenant, historyExt), Values: map[string]any{
			"ts": "2026-12-07T23:59:00Z", "level": "warn", "request": "req-live", "message": "hello from the guest"}})
		testenv.WaitFor(t, 10*time.Second, func() error {
			if !strings.Contains(stdout.String(), "hello from the guest") {
				return fmt.Errorf("no live line yet: %q", stdout.String())
			}
			return nil
		})
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("exit %d after cancel: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("logs --follow did not stop when cancelled")
		}
		out := stdout.String()
		sc := bufio.NewScanner(strings.NewReader(out))
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "STARTED") || !strings.Contains(lines[3], recs[2].RequestID) ||
			!strings.Contains(lines[4], "warn") || !strings.Contains(lines[4], "req-live") || !strings.HasSuffix(lines[4], "hello from the guest") {
			t.Fatalf("output:\n%s", out)
		}
		if strings.Contains(out, "not yours") {
			t.Fatal("printed another tenant's line")
		}
	})
	t.Run("--json prints history and live entries as JSON lines", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		c := &cli{stdout: stdout, stderr: stderr, stdin: strings.NewReader(""), ctx: ctx}
		args := append(append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt, "--json", "--limit", "1"}, gwFlags("extension:debug")...), r.flags(r.tenantToken)...)
		done := make(chan int, 1)
		go func() { done <- c.main(args) }()
		testenv.WaitFor(t, 20*time.Second, func() error {
			if !strings.Contains(stderr.String(), "following") {
				return fmt.Errorf("not following yet: %q", stderr.String())
			}
			return nil
		})
		rc.XAdd(ctx, &redis.XAddArgs{Stream: debuglog.StreamKey(historyTenant, historyExt), Values: map[string]any{"level": "info", "message": "json line"}})
		testenv.WaitFor(t, 10*time.Second, func() error {
			if !strings.Contains(stdout.String(), "json line") {
				return fmt.Errorf("no live line yet")
			}
			return nil
		})
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		lines := jsonLines[map[string]any](t, stdout.String())
		if len(lines) != 2 || lines[0]["type"] != "execution" || lines[0]["request_id"] != recs[2].RequestID ||
			lines[1]["type"] != "debug" || lines[1]["message"] != "json line" || lines[1]["id"] == "" {
			t.Fatalf("lines %v", lines)
		}
	})
	t.Run("a gateway token without extension:debug fails with the gateway's code", func(t *testing.T) {
		code, _, errOut := run(t, append(append([]string{"logs", "--tenant", historyTenant, "--extension", historyExt}, gwFlags("extension:read")...), r.flags(r.tenantToken)...)...)
		if code != 1 || !strings.HasPrefix(errOut, "extctl: gateway: forbidden: ") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}
