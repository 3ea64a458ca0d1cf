// Package events benchmarks event deliveries (SPEC §18) of the sample
// extension: deliveries per second and event → handler latency through
// registryd's queue and a real runnerd's delivery worker, beside the
// same handler called directly with POST /v1/execute in the same run.
// It reports; it asserts nothing about the numbers.
//
//	EXTEDGE_BENCH=1 go test -count=1 -run TestEventDeliveryRate -v ./bench/events
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	ext    = "com.acme.agreements"
	tenant = "bench"
	topic  = "agreement.updated"
	// workers is the delivery worker's concurrency and the API callers'.
	workers = 4
	// ids bounds the agreements the events touch, so the handler's index
	// rebuild (one read per stored agreement) stays the same size.
	ids = 8
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestEventDeliveryRate(t *testing.T) {
	if os.Getenv("EXTEDGE_BENCH") != "1" {
		t.Skip("event delivery benchmark: set EXTEDGE_BENCH=1 to run it (starts PostgreSQL, registryd and runnerd)")
	}
	burst := envInt("EXTEDGE_BENCH_EVENTS", 300)
	paced := envInt("EXTEDGE_BENCH_PACED_EVENTS", 40)
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pg := testenv.Postgres(t)
	pub := bundletest.NewPublisher(t, "Acme Inc.")
	trust := filepath.Join(dir, "trust.pem")
	os.WriteFile(trust, pub.TrustPEM, 0o600)
	blobs := "file://" + filepath.Join(dir, "blobs")
	reg := testenv.Registryd(t, testenv.RegistrydOptions{DatabaseURL: pg.URL(), BundleStore: blobs, TrustBundle: trust, Args: []string{"--log-level", "warn"}})
	admin := registryapi.New(reg.URL, reg.Token(t, "--role", "platform_admin"), nil)
	svcToken := reg.Token(t, "--role", "service")
	svc := registryapi.New(reg.URL, svcToken, nil)

	// The sample, built and packed as devstack does.
	stage := filepath.Join(dir, "stage")
	os.MkdirAll(filepath.Join(stage, "dist"), 0o755)
	build := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(stage, "dist", "main.wasm"), "./examples/agreements/guest")
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the sample: %v\n%s", err, out)
	}
	for _, cp := range [][]string{{"cp", filepath.Join(root, "examples/agreements/manifest.json"), stage}, {"cp", "-r", filepath.Join(root, "examples/agreements/ui"), stage}} {
		if out, err := exec.Command(cp[0], cp[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", cp, err, out)
		}
	}
	var archive bytes.Buffer
	hash, err := bundle.Pack(stage, &archive)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := signing.Sign(pub.Key, hash)
	ctx := context.Background()
	if _, err := admin.Publish(ctx, bytes.NewReader(archive.Bytes()), int64(archive.Len()), sig.Marshal()); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutInstall(ctx, tenant, ext, registryapi.InstallRequest{Version: "1.0.0", GrantedCaps: []string{"storage.kv"}}); err != nil {
		t.Fatal(err)
	}
	inst, _, _, err := svc.Resolve(ctx, tenant, ext, "")
	if err != nil {
		t.Fatal(err)
	}

	svcFile := filepath.Join(dir, "svc.token")
	os.WriteFile(svcFile, []byte(svcToken), 0o600)
	runner := testenv.Runnerd(t, testenv.RunnerdOptions{BundleStore: blobs, TrustBundle: trust, Token: "tok",
		Args: []string{"--registry", reg.URL, "--registry-token-file", svcFile, "--log-level", "warn",
			"--delivery-concurrency", strconv.Itoa(workers), "--delivery-poll", "100ms"}})

	publish := func(id string, i int) time.Time {
		at := time.Now()
		payload := fmt.Sprintf(`{"id":"B-%d","client":"Bench","name":"n","status":"active","monthly_amount":%d}`, i%ids, i)
		if _, err := svc.PublishEvent(ctx, registryapi.Event{ID: id, TenantID: tenant, Topic: topic, OccurredAt: at.UTC(), Payload: json.RawMessage(payload)}); err != nil {
			t.Fatal(err)
		}
		return at
	}
	conn, err := pgx.Connect(ctx, pg.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// handled waits for the execution records of the events and returns
	// each one's start and end.
	firstTry := map[string]bool{}
	handled := func(evIDs []string) map[string][2]time.Time {
		out := map[string][2]time.Time{}
		testenv.WaitFor(t, 3*time.Minute, func() error {
			rows, err := conn.Query(ctx, `SELECT event_id, request_id, started_at, finished_at FROM extension_execution_log
				WHERE tenant_id = $1 AND event_id = ANY($2) AND status = 'ok' AND http_status = 204`, tenant, evIDs)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id, rid string
				var s, f time.Time
				rows.Scan(&id, &rid, &s, &f)
				out[id] = [2]time.Time{s, f}
				firstTry[id] = strings.HasSuffix(rid, "-1")
			}
			if len(out) < len(evIDs) {
				return fmt.Errorf("%d of %d events handled", len(out), len(evIDs))
			}
			return nil
		})
		return out
	}

	// Warm-up: the first delivery fetches and compiles the bundle.
	publish("warm", 0)
	handled([]string{"warm"})

	// Burst: every event published at once (workers publishers), then
	// drained by the runner.
	type sent struct {
		id string
		at time.Time
	}
	burstSent := make([]sent, burst)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < burst; i = int(next.Add(1)) - 1 {
				id := "burst-" + strconv.Itoa(i)
				burstSent[i] = sent{id, publish(id, i)}
			}
		}()
	}
	wg.Wait()
	published := time.Since(start)
	var burstIDs []string
	for _, s := range burstSent {
		burstIDs = append(burstIDs, s.id)
	}
	got := handled(burstIDs)
	// Deliveries that failed wait registryd's backoff (30 s) before their
	// next attempt; the rate is over the first attempts that succeeded.
	var last time.Time
	var burstLat, firstLat []time.Duration
	for _, s := range burstSent {
		r := got[s.id]
		burstLat = append(burstLat, r[0].Sub(s.at))
		if firstTry[s.id] {
			last = maxTime(last, r[1])
			firstLat = append(firstLat, r[0].Sub(s.at))
		}
	}
	burstRate := float64(len(firstLat)) / last.Sub(start).Seconds()

	// Paced: one event every 150 ms, so the runner is idle when each
	// arrives: the latency an event sees on a quiet system.
	var pacedSent []sent
	for i := range paced {
		id := "paced-" + strconv.Itoa(i)
		pacedSent = append(pacedSent, sent{id, publish(id, i)})
		time.Sleep(150 * time.Millisecond)
	}
	var pacedIDs []string
	for _, s := range pacedSent {
		pacedIDs = append(pacedIDs, s.id)
	}
	got = handled(pacedIDs)
	var pacedLat, pacedRun []time.Duration
	for _, s := range pacedSent {
		pacedLat = append(pacedLat, got[s.id][0].Sub(s.at))
		pacedRun = append(pacedRun, got[s.id][1].Sub(s.at))
	}

	// The same handler called directly: POST /v1/execute with the event
	// envelope a delivery uses, workers callers, as many calls as the burst.
	client := runner.Client(30 * time.Second)
	var apiLat []time.Duration
	var apiFailed atomic.Int64
	var mu sync.Mutex
	next.Store(0)
	apiStart := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < burst; i = int(next.Add(1)) - 1 {
				env := execapi.Request{
					Context: execapi.Context{RequestID: "api-" + strconv.Itoa(i), TenantID: tenant, ExtensionID: ext,
						InstallID: inst.InstallID, VersionID: inst.Version.ID, ContentHash: inst.ContentHash},
					Endpoint:     execapi.Endpoint{Handler: "dist/handlers/on_agreement_updated"},
					Capabilities: inst.Capabilities,
					Event: &execapi.Event{ID: "api-" + strconv.Itoa(i), Topic: topic, OccurredAt: time.Now(),
						Payload: json.RawMessage(fmt.Sprintf(`{"id":"B-%d","client":"Bench","name":"n","status":"active","monthly_amount":%d}`, i%ids, -i))},
				}
				b, _ := json.Marshal(env)
				req, _ := http.NewRequest("POST", "http://runner/v1/execute", bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer tok")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"status":204`)) {
					apiFailed.Add(1)
					continue
				}
				mu.Lock()
				apiLat = append(apiLat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	apiRate := float64(len(apiLat)) / time.Since(apiStart).Seconds()

	t.Logf("sample %s handler, %d workers, runner --delivery-poll 100ms, %d agreement ids", topic, workers, ids)
	t.Logf("%-44s %10s %10s %10s", "scenario", "per s", "p50", "p99")
	t.Logf("%-44s %10.1f %10s %10s", fmt.Sprintf("burst: %d of %d events ok at first attempt", len(firstLat), burst), burstRate, pct(firstLat, 50), pct(firstLat, 99))
	t.Logf("%-44s %10s %10s %10s", "burst, all events incl. retried, →start", "-", pct(burstLat, 50), pct(burstLat, 99))
	t.Logf("%-44s %10s %10s %10s", fmt.Sprintf("paced %d events (idle runner), →start", paced), "-", pct(pacedLat, 50), pct(pacedLat, 99))
	t.Logf("%-44s %10s %10s %10s", "paced, event→handler done", "-", pct(pacedRun, 50), pct(pacedRun, 99))
	t.Logf("%-44s %10.1f %10s %10s", fmt.Sprintf("same handler via POST /v1/execute (%d)", len(apiLat)), apiRate, pct(apiLat, 50), pct(apiLat, 99))
	rows, err := conn.Query(ctx, `SELECT status, coalesce(http_status, 0), count(*) FROM extension_execution_log WHERE tenant_id = $1
		AND event_id IS NOT NULL AND NOT (status = 'ok' AND http_status = 204) GROUP BY 1, 2`, tenant)
	if err == nil {
		for rows.Next() {
			var st string
			var hs, n int
			rows.Scan(&st, &hs, &n)
			t.Logf("failed attempts (deliveries and execute calls): %d × %s/%d", n, st, hs)
		}
	}
	t.Logf("execute calls not answered 204: %d", apiFailed.Load())
	if b, err := os.ReadFile(runner.Log); err == nil {
		shown := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "handler error") && shown < 3 {
				t.Logf("runner log: %.400s", line)
				shown++
			}
		}
	}
	t.Logf("deliveries/s ÷ execute calls/s = %.2f (burst published in %v: %.0f events/s into registryd)", burstRate/apiRate, published.Round(time.Millisecond), float64(burst)/published.Seconds())
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(100 * time.Microsecond).String()
}
