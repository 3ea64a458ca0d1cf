package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
	"github.com/extedge/extedge/runnerd/runnertest/guests"
)

// eventStack is a real registryd on a real PostgreSQL, with the Go test
// guest (runnerd/testdata/goguest) published as several extensions, and
// real runnerd processes started per test.
type eventStack struct {
	*registryd
	pg                           *testenv.PostgresServer
	dir, blobDir, trust, keyFile string
	svcFile, tokenFile           string
	svc                          *registryapi.Client
	pub                          *bundletest.Publisher
	installs                     map[string]string // tenant/ext → install id
}

func newEventStack(t *testing.T, registrydArgs ...string) *eventStack {
	t.Helper()
	s := &eventStack{pg: testenv.Postgres(t), dir: t.TempDir(), installs: map[string]string{}}
	s.blobDir = filepath.Join(s.dir, "blobs")
	s.pub = bundletest.NewPublisher(t, "Acme Inc.")
	s.trust = filepath.Join(s.dir, "trust.pem")
	os.WriteFile(s.trust, s.pub.TrustPEM, 0o600)
	s.keyFile = filepath.Join(s.dir, "secrets.key")
	os.WriteFile(s.keyFile, []byte(secretbox.GenerateKey()+"\n"), 0o600)
	srv := testenv.Registryd(t, testenv.RegistrydOptions{
		DatabaseURL: s.pg.URL(), BundleStore: "file://" + s.blobDir, TrustBundle: s.trust,
		SecretsKeyFile: s.keyFile, Args: append([]string{"--log-level", "warn"}, registrydArgs...),
	})
	s.registryd = &registryd{url: srv.URL, admin: srv.Token(t, "--role", "platform_admin"), service: srv.Token(t, "--role", "service")}
	s.svc = registryapi.New(s.url, s.service, nil)
	s.tokenFile = filepath.Join(s.dir, "runner.token")
	os.WriteFile(s.tokenFile, []byte("tok"), 0o600)
	s.svcFile = filepath.Join(s.dir, "service.token")
	os.WriteFile(s.svcFile, []byte(s.service), 0o600)
	return s
}

// publish publishes the test guest as ext 1.0.0, subscribed to topics.
func (s *eventStack) publish(t *testing.T, ext string, topics ...string) {
	t.Helper()
	var subs []string
	for _, tp := range topics {
		subs = append(subs, `{"topic":"`+tp+`","handler":"dist/main"}`)
	}
	manifest := `{"name":"` + ext + `","publisher":"Acme Inc.","version":"1.0.0","runtime":"wasm@1",` +
		`"capabilities":["storage.kv","secrets.get"],"api":{"endpoints":[{"method":"GET","path":"/hello","handler":"dist/main"}]},` +
		`"events":[` + strings.Join(subs, ",") + `]}`
	archive, hash := bundletest.Pack(t, map[string][]byte{"manifest.json": []byte(manifest), "dist/main.wasm": guests.GoGuest(t, "goguest")})
	sig, _ := signing.Sign(s.pub.Key, hash)
	if st, body := s.call(t, "POST", "/v1/bundles", map[string]string{"Content-Type": "application/octet-stream",
		"X-Extedge-Signature": base64.StdEncoding.EncodeToString(sig.Marshal())}, archive); st != 201 {
		t.Fatalf("publish %s: %d %s", ext, st, body)
	}
}

// install installs ext for tenant with its secret api_key = tenant+"-key".
func (s *eventStack) install(t *testing.T, tenant, ext string) {
	t.Helper()
	if st, body := s.call(t, "PUT", "/v1/tenants/"+tenant+"/installs/"+ext, nil,
		[]byte(`{"version":"1.0.0","granted_caps":["storage.kv","secrets.get"]}`)); st/100 != 2 {
		t.Fatalf("install: %d %s", st, body)
	}
	if st, body := s.call(t, "PUT", "/v1/tenants/"+tenant+"/installs/"+ext+"/secrets", nil, []byte(`{"api_key":"`+tenant+`-key"}`)); st/100 != 2 {
		t.Fatalf("secrets: %d %s", st, body)
	}
	res, _, _, err := s.svc.Resolve(context.Background(), tenant, ext, "")
	if err != nil {
		t.Fatal(err)
	}
	s.installs[tenant+"/"+ext] = res.InstallID
}

// runner starts a runnerd process working the delivery queue.
func (s *eventStack) runner(t *testing.T, args ...string) *testenv.RunnerdServer {
	t.Helper()
	return testenv.Runnerd(t, testenv.RunnerdOptions{
		BundleStore: "file://" + s.blobDir, TrustBundle: s.trust, TokenFile: s.tokenFile,
		Args: append([]string{"--registry", s.url, "--registry-token-file", s.svcFile, "--secrets-key-file", s.keyFile,
			"--delivery-poll", "100ms", "--log-level", "warn"}, args...),
	})
}

func (s *eventStack) event(t *testing.T, tenant, id, topic, payload string) int {
	t.Helper()
	res, err := s.svc.PublishEvent(context.Background(), registryapi.Event{ID: id, TenantID: tenant, Topic: topic,
		OccurredAt: time.Now().UTC(), Payload: json.RawMessage(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return res.Deliveries
}

// counter reads the guest's counter at events/key of an install; 0 when
// it is absent.
func (s *eventStack) counter(t *testing.T, tenant, ext, key string) (int, map[string]any) {
	t.Helper()
	res, err := s.svc.Storage(context.Background(), registryapi.StorageRequest{TenantID: tenant, InstallID: s.installs[tenant+"/"+ext],
		Op: registryapi.StorageGet, Namespace: "events", Key: key})
	if registryapi.IsCode(err, "not_found") {
		return 0, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(res.Item.Value, &v)
	n, _ := v["n"].(float64)
	return int(n), v
}

func (s *eventStack) waitCounter(t *testing.T, tenant, ext, key string, want int, within time.Duration) map[string]any {
	t.Helper()
	var v map[string]any
	testenv.WaitFor(t, within, func() error {
		var n int
		if n, v = s.counter(t, tenant, ext, key); n != want {
			return fmt.Errorf("%s %s %s = %d, want %d", tenant, ext, key, n, want)
		}
		return nil
	})
	return v
}

// delivery lists the one delivery of event id for an install.
func (s *eventStack) delivery(t *testing.T, tenant, ext, eventID string) registryapi.Delivery {
	t.Helper()
	list, err := registryapi.New(s.url, s.admin, nil).ListDeliveries(context.Background(), tenant, ext, "", 500)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.EventID == eventID {
			return d
		}
	}
	t.Fatalf("no delivery of %s for %s/%s", eventID, tenant, ext)
	return registryapi.Delivery{}
}

func (s *eventStack) waitStatus(t *testing.T, tenant, ext, eventID, status string, within time.Duration) registryapi.Delivery {
	t.Helper()
	var d registryapi.Delivery
	testenv.WaitFor(t, within, func() error {
		if d = s.delivery(t, tenant, ext, eventID); d.Status != status {
			return fmt.Errorf("delivery %s is %s after %d attempts (%s), want %s", d.ID, d.Status, d.Attempts, d.LastError, status)
		}
		return nil
	})
	return d
}

// records counts the execution log rows of an event, by outcome.
func (s *eventStack) records(t *testing.T, tenant, eventID string) map[string]int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.pg.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT status, count(*) FROM extension_execution_log
		WHERE tenant_id = $1 AND event_id = $2 GROUP BY status`, tenant, eventID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var o string
		var n int
		rows.Scan(&o, &n)
		out[o] = n
	}
	return out
}

// TestEventDeliveries runs §18 deliveries end to end: registryd on
// PostgreSQL fans events out, real runnerd processes lease and run them
// in the Go guest with the install's KV and secrets.
func TestEventDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, registryd and runnerd")
	}
	s := newEventStack(t, "--event-max-attempts", "2", "--event-backoff", "1s")
	const extA, extB, extC = "com.acme.eva", "com.acme.evb", "com.acme.evc"
	s.publish(t, extA, "test.count", "test.fail", "test.slow")
	s.publish(t, extB, "test.count")
	s.publish(t, extC, "test.other")
	for _, ti := range [][2]string{{"tenant-a", extA}, {"tenant-a", extB}, {"tenant-a", extC}, {"tenant-b", extA}} {
		s.install(t, ti[0], ti[1])
	}

	t.Run("one event runs once per subscribed install and KV reflects it", func(t *testing.T) {
		s.runner(t)
		if n := s.event(t, "tenant-a", "ev-count", "test.count", `{"x":1}`); n != 2 {
			t.Fatalf("%d deliveries, want 2 (eva and evb of tenant-a)", n)
		}
		for _, ext := range []string{extA, extB} {
			v := s.waitCounter(t, "tenant-a", ext, "count:ev-count", 1, 20*time.Second)
			if v["secret"] != "tenant-a-key" || v["install"] != s.installs["tenant-a/"+ext] || fmt.Sprint(v["payload"]) != "map[x:1]" {
				t.Fatalf("%s: guest saw %v", ext, v)
			}
			s.waitStatus(t, "tenant-a", ext, "ev-count", registryapi.DeliverySucceeded, 10*time.Second)
		}
		if n, _ := s.counter(t, "tenant-b", extA, "count:ev-count"); n != 0 {
			t.Fatalf("tenant-b's install ran tenant-a's event %d times", n)
		}
		testenv.WaitFor(t, 15*time.Second, func() error {
			if r := s.records(t, "tenant-a", "ev-count"); r["ok"] != 2 || len(r) != 1 {
				return fmt.Errorf("execution records of ev-count: %v, want 2 ok", r)
			}
			return nil
		})
		// A repeated id is not delivered again.
		if n := s.event(t, "tenant-a", "ev-count", "test.count", `{"x":2}`); n != 2 {
			t.Fatalf("repeat answered %d deliveries, want the first answer (2)", n)
		}
		time.Sleep(time.Second)
		for _, ext := range []string{extA, extB} {
			if n, _ := s.counter(t, "tenant-a", ext, "count:ev-count"); n != 1 {
				t.Fatalf("%s ran ev-count %d times", ext, n)
			}
		}
	})

	t.Run("a failing handler is retried then dead, and retry delivers it again", func(t *testing.T) {
		s.runner(t)
		s.event(t, "tenant-a", "ev-fail", "test.fail", `null`)
		d := s.waitStatus(t, "tenant-a", extA, "ev-fail", registryapi.DeliveryDead, 30*time.Second)
		if d.Attempts != 2 || !strings.Contains(d.LastError, "500") {
			t.Fatalf("dead delivery %+v", d)
		}
		if n, _ := s.counter(t, "tenant-a", extA, "fail:ev-fail"); n != 2 {
			t.Fatalf("handler ran %d times, want 2", n)
		}
		if _, err := registryapi.New(s.url, s.admin, nil).RetryDelivery(context.Background(), "tenant-a", extA, d.ID); err != nil {
			t.Fatal(err)
		}
		s.waitCounter(t, "tenant-a", extA, "fail:ev-fail", 4, 30*time.Second)
		s.waitStatus(t, "tenant-a", extA, "ev-fail", registryapi.DeliveryDead, 30*time.Second)
	})

	t.Run("a runner killed mid-delivery is redelivered by another after the lease", func(t *testing.T) {
		short := []string{"--delivery-lease", "15s", "--timeout", "5s", "--init-timeout", "2s"}
		first := s.runner(t, short...)
		s.event(t, "tenant-a", "ev-slow", "test.slow", `{"ms":2000}`)
		s.waitCounter(t, "tenant-a", extA, "started:ev-slow", 1, 20*time.Second)
		first.Kill()
		killed := time.Now()
		s.runner(t, short...)
		s.waitCounter(t, "tenant-a", extA, "done:ev-slow", 1, 40*time.Second)
		took := time.Since(killed)
		if n, _ := s.counter(t, "tenant-a", extA, "started:ev-slow"); n != 2 {
			t.Fatalf("started %d times, want 2", n)
		}
		d := s.waitStatus(t, "tenant-a", extA, "ev-slow", registryapi.DeliverySucceeded, 10*time.Second)
		if d.Attempts != 2 {
			t.Fatalf("delivery %+v, want 2 attempts", d)
		}
		if took < 3*time.Second {
			t.Fatalf("redelivered %v after the kill, before the 15 s lease could expire", took)
		}
		t.Logf("redelivered and done %v after the kill (lease 15 s)", took.Round(100*time.Millisecond))
	})

	t.Run("SIGTERM lets a delivery in flight finish and acknowledge", func(t *testing.T) {
		r := s.runner(t)
		s.event(t, "tenant-a", "ev-drain", "test.slow", `{"ms":1500}`)
		s.waitCounter(t, "tenant-a", extA, "started:ev-drain", 1, 20*time.Second)
		r.Stop()
		if n, _ := s.counter(t, "tenant-a", extA, "done:ev-drain"); n != 1 {
			t.Fatalf("done %d times after the drain, want 1", n)
		}
		if d := s.delivery(t, "tenant-a", extA, "ev-drain"); d.Status != registryapi.DeliverySucceeded || d.Attempts != 1 {
			t.Fatalf("delivery after the drain %+v, want succeeded at attempt 1", d)
		}
	})

	t.Run("two runners never run one delivery concurrently", func(t *testing.T) {
		runners := []*testenv.RunnerdServer{s.runner(t), s.runner(t)}
		const n = 16
		for i := range n {
			s.event(t, "tenant-a", fmt.Sprintf("ev-par-%d", i), "test.slow", `{"ms":300}`)
		}
		for i := range n {
			id := fmt.Sprintf("ev-par-%d", i)
			s.waitCounter(t, "tenant-a", extA, "done:"+id, 1, 60*time.Second)
			if started, _ := s.counter(t, "tenant-a", extA, "started:"+id); started != 1 {
				t.Fatalf("%s started %d times", id, started)
			}
		}
		testenv.WaitFor(t, 15*time.Second, func() error {
			for i := range n {
				id := fmt.Sprintf("ev-par-%d", i)
				if r := s.records(t, "tenant-a", id); r["ok"] != 1 || len(r) != 1 {
					return fmt.Errorf("%s records %v, want one ok", id, r)
				}
			}
			return nil
		})
		for i, r := range runners {
			t.Logf("runner %d ran %v deliveries", i, deliveriesRun(t, r))
		}
	})
}

// deliveriesRun reads a runner's count of successful delivery attempts
// from /metrics.
func deliveriesRun(t *testing.T, r *testenv.RunnerdServer) string {
	t.Helper()
	resp, err := r.Client(5 * time.Second).Get("http://runner/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `extedge_runner_delivery_attempts_total{outcome="ok"} `); ok {
			return v
		}
	}
	return "0"
}
