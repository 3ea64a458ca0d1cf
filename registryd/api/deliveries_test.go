package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/registryd/store"
)

// lease calls the lease API as the service and returns the deliveries.
func (e *env) lease(body map[string]any) []registryapi.LeasedDelivery {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	r := e.do("POST", "/v1/internal/deliveries/lease", e.service, body, nil)
	expect(e.t, r, http.StatusOK, "")
	var out registryapi.LeaseResponse
	r.decode(e.t, &out)
	if out.Deliveries == nil {
		e.t.Fatalf("lease reply has no deliveries list: %s", r.body)
	}
	return out.Deliveries
}

// finish posts complete or fail for d with body fields.
func (e *env) finish(d registryapi.LeasedDelivery, verb string, body map[string]any) reply {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["lease_id"]; !ok {
		body["lease_id"] = d.LeaseID
	}
	return e.do("POST", "/v1/internal/deliveries/"+d.ID+"/"+verb, e.service, body, nil)
}

// eventsEnv is an env with a fake clock, com.acme.tickets subscribed to
// ticket.created and installed for tenant-a.
func eventsEnv(t *testing.T, policy store.DeliveryPolicy) (*env, *fakeClock) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, envOptions{now: clock.now, delivery: policy, rand: func() float64 { return 0.75 }})
	e.publishSubscriber("com.acme.tickets", "1.0.0", "ticket.created")
	e.install("tenant-a", "com.acme.tickets", "1.0.0")
	return e, clock
}

func (e *env) publishEvent(id string) {
	e.t.Helper()
	expect(e.t, e.do("POST", "/v1/events", e.service, event(id, "tenant-a", "ticket.created"), nil), http.StatusAccepted, "")
}

// TestDeliveryLease: a lease hands out a due delivery with its event, once;
// complete needs the lease id and ends the delivery.
func TestDeliveryLease(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{})
	e.publishEvent("evt-1")

	got := e.lease(nil)
	if len(got) != 1 {
		t.Fatalf("leased %d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.TenantID != "tenant-a" || d.Extension != "com.acme.tickets" || d.Handler != "dist/main.wasm#on_ticket_created" ||
		d.Attempt != 1 || d.MaxAttempts != 8 || d.InstallID == "" || d.LeaseID == "" ||
		!d.LeaseExpiresAt.Equal(clock.now().Add(time.Minute)) {
		t.Fatalf("leased delivery = %+v", d)
	}
	if d.Event.ID != "evt-1" || d.Event.Topic != "ticket.created" || string(d.Event.Payload) != `{"ticket":42}` ||
		!d.Event.OccurredAt.Equal(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("event = %+v (payload %s)", d.Event, d.Event.Payload)
	}
	t.Run("a leased delivery is not leased again while its lease runs", func(t *testing.T) {
		clock.add(59 * time.Second)
		if again := e.lease(nil); len(again) != 0 {
			t.Fatalf("leased again: %+v", again)
		}
	})
	t.Run("complete with another lease id is lease_lost", func(t *testing.T) {
		expect(t, e.finish(d, "complete", map[string]any{"lease_id": "00000000-0000-4000-8000-000000000000"}), 409, "lease_lost")
	})
	t.Run("complete with a malformed lease id is invalid_request", func(t *testing.T) {
		expect(t, e.finish(d, "complete", map[string]any{"lease_id": "nope"}), 400, "invalid_request")
	})
	t.Run("an unknown delivery is not_found", func(t *testing.T) {
		unknown := d
		unknown.ID = "00000000-0000-4000-8000-000000000001"
		expect(t, e.finish(unknown, "complete", nil), 404, "not_found")
		unknown.ID = "not-a-uuid"
		expect(t, e.finish(unknown, "fail", nil), 404, "not_found")
	})
	t.Run("complete ends the delivery", func(t *testing.T) {
		r := e.finish(d, "complete", nil)
		expect(t, r, 200, "")
		var out registryapi.DeliveryOutcome
		r.decode(t, &out)
		if out.Status != "succeeded" || out.Attempts != 1 {
			t.Fatalf("outcome = %+v", out)
		}
		expect(t, e.finish(d, "complete", nil), 409, "lease_lost")
		clock.add(24 * time.Hour)
		if again := e.lease(nil); len(again) != 0 {
			t.Fatalf("a completed delivery was leased: %+v", again)
		}
	})
	t.Run("lease bounds are invalid_request", func(t *testing.T) {
		for _, body := range []map[string]any{{"limit": 101}, {"limit": -1}, {"lease_seconds": 4}, {"lease_seconds": 3601}, {"limt": 1}} {
			expect(t, e.do("POST", "/v1/internal/deliveries/lease", e.service, body, nil), 400, "invalid_request")
		}
	})
	t.Run("a tenant admin may not lease", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/internal/deliveries/lease", e.tenantA, map[string]any{}, nil), 403, "forbidden")
	})
	t.Run("a disabled install's deliveries wait until it is enabled", func(t *testing.T) {
		e.publishEvent("evt-2")
		expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.tickets/disable", e.admin, nil, nil), 200, "")
		if got := e.lease(nil); len(got) != 0 {
			t.Fatalf("leased a disabled install's delivery: %+v", got)
		}
		expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.tickets/enable", e.admin, nil, nil), 200, "")
		if got := e.lease(nil); len(got) != 1 || got[0].Event.ID != "evt-2" {
			t.Fatalf("after enable: %+v", got)
		}
	})
	t.Run("the payload comes back as sent", func(t *testing.T) {
		const payload = `{"z":"a\u0000b","a":[1,2.50]}`
		body := `{"id":"evt-3","tenant_id":"tenant-a","topic":"ticket.created","occurred_at":"2026-12-07T10:00:00Z","payload":` + payload + `}`
		expect(t, e.do("POST", "/v1/events", e.service, body, nil), http.StatusAccepted, "")
		if got := e.lease(nil); len(got) != 1 || string(got[0].Event.Payload) != payload {
			t.Fatalf("leased %+v, want payload %s", got, payload)
		}
	})
}

// TestDeliveryFailRetriesWithBackoffThenDead: a failed attempt comes back
// after an exponential, jittered delay; after max attempts the delivery is
// dead and never leased again; a permanent failure is dead at once.
func TestDeliveryFailRetriesWithBackoffThenDead(t *testing.T) {
	// rand 0.75 scales each delay by 1 + 0.2 × 0.5 = 1.1.
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 3, BaseBackoff: 10 * time.Second, Jitter: 0.2})
	e.publishEvent("evt-1")
	for attempt, delay := range []time.Duration{11 * time.Second, 22 * time.Second} {
		got := e.lease(nil)
		if len(got) != 1 || got[0].Attempt != attempt+1 {
			t.Fatalf("attempt %d: leased %+v", attempt+1, got)
		}
		r := e.finish(got[0], "fail", map[string]any{"error": "guest answered 500"})
		expect(t, r, 200, "")
		var out registryapi.DeliveryOutcome
		r.decode(t, &out)
		if out.Status != "pending" || out.Attempts != attempt+1 || out.NextAttemptAt == nil || !out.NextAttemptAt.Equal(clock.now().Add(delay)) {
			t.Fatalf("attempt %d: outcome %+v, want pending until now+%s", attempt+1, out, delay)
		}
		clock.add(delay - time.Second)
		if early := e.lease(nil); len(early) != 0 {
			t.Fatalf("attempt %d: leased %s before its backoff ended", attempt+1, time.Second)
		}
		clock.add(time.Second)
	}
	last := e.lease(nil)
	if len(last) != 1 || last[0].Attempt != 3 {
		t.Fatalf("third attempt: %+v", last)
	}
	r := e.finish(last[0], "fail", map[string]any{"error": "guest answered 500", "retryable": true})
	expect(t, r, 200, "")
	if !jsonHas(r.body, `"status":"dead"`) {
		t.Fatalf("after max attempts: %s", r.body)
	}
	clock.add(48 * time.Hour)
	if got := e.lease(nil); len(got) != 0 {
		t.Fatalf("a dead delivery was leased: %+v", got)
	}
	if rows := e.deliveries("tenant-a"); len(rows) != 1 || rows[0].status != "dead" || rows[0].attempts != 3 {
		t.Fatalf("rows = %+v", rows)
	}

	t.Run("a failure that is not retryable is dead at once", func(t *testing.T) {
		e.publishEvent("evt-2")
		got := e.lease(nil)
		if len(got) != 1 {
			t.Fatalf("leased %+v", got)
		}
		r := e.finish(got[0], "fail", map[string]any{"retryable": false, "error": "no such handler"})
		expect(t, r, 200, "")
		if !jsonHas(r.body, `"status":"dead"`) || !jsonHas(r.body, `"attempts":1`) {
			t.Fatalf("permanent failure: %s", r.body)
		}
	})
}

// jsonHas reports whether a compact JSON reply contains s.
func jsonHas(body []byte, s string) bool { return strings.Contains(string(body), s) }

// TestDeliveryLeaseExpires: a lease that is neither completed nor failed
// (the runner died) expires and the delivery is leased again, under a new
// lease id; the old holder's complete is lease_lost. A lease that expires
// on the last attempt makes the delivery dead.
func TestDeliveryLeaseExpires(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 2})
	e.publishEvent("evt-1")
	first := e.lease(map[string]any{"lease_seconds": 5})
	if len(first) != 1 {
		t.Fatalf("leased %+v", first)
	}
	clock.add(4 * time.Second)
	if got := e.lease(nil); len(got) != 0 {
		t.Fatalf("leased before expiry: %+v", got)
	}
	clock.add(time.Second)
	second := e.lease(map[string]any{"lease_seconds": 5})
	if len(second) != 1 || second[0].ID != first[0].ID || second[0].LeaseID == first[0].LeaseID || second[0].Attempt != 2 {
		t.Fatalf("after expiry: %+v, want %s again with a new lease id, attempt 2", second, first[0].ID)
	}
	expect(t, e.finish(first[0], "complete", nil), 409, "lease_lost")
	expect(t, e.finish(first[0], "fail", nil), 409, "lease_lost")

	t.Run("a lease expiring on the last attempt makes the delivery dead", func(t *testing.T) {
		clock.add(5 * time.Second)
		if got := e.lease(nil); len(got) != 0 {
			t.Fatalf("leased after the last attempt expired: %+v", got)
		}
		rows := e.deliveries("tenant-a")
		if len(rows) != 1 || rows[0].status != "dead" {
			t.Fatalf("rows = %+v", rows)
		}
		expect(t, e.finish(second[0], "complete", nil), 409, "lease_lost")
	})
}

// TestConcurrentLeasesNeverShareADelivery: leasers racing over the same
// queue each get distinct deliveries, and together get every one exactly
// once (run with -race).
func TestConcurrentLeasesNeverShareADelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publishSubscriber("com.acme.tickets", "1.0.0", "ticket.created")
	e.publishSubscriber("com.acme.audit", "1.0.0", "ticket.created")
	e.install("tenant-a", "com.acme.tickets", "1.0.0")
	e.install("tenant-a", "com.acme.audit", "1.0.0")
	const events = 60
	for i := range events {
		e.publishEvent(fmt.Sprintf("evt-%d", i))
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	c := e.client(e.service)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := c.LeaseDeliveries(t.Context(), registryapi.LeaseRequest{Limit: 7})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*events {
		t.Fatalf("leased %d distinct deliveries, want %d", len(seen), 2*events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s was leased %d times", id, n)
		}
	}
}

// listDeliveries calls the admin listing as token.
func (e *env) listDeliveries(token, tenant, query string) []registryapi.Delivery {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+tenant+"/installs/com.acme.tickets/deliveries"+query, token, nil, nil)
	expect(e.t, r, http.StatusOK, "")
	var out []registryapi.Delivery
	r.decode(e.t, &out)
	return out
}

// TestDeliveryAdminListAndRetry: tenant admins list their install's
// deliveries by status and retry a dead one, which is then deliverable
// again with fresh attempts; other tenants see and touch nothing.
func TestDeliveryAdminListAndRetry(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 1})
	e.install("tenant-b", "com.acme.tickets", "1.0.0")
	e.publishEvent("evt-dead")
	got := e.lease(nil)
	if len(got) != 1 {
		t.Fatalf("leased %+v", got)
	}
	expect(t, e.finish(got[0], "fail", map[string]any{"error": "guest answered 503"}), 200, "")
	clock.add(time.Second)
	e.publishEvent("evt-pending")
	expect(t, e.do("POST", "/v1/events", e.service, event("evt-b", "tenant-b", "ticket.created"), nil), http.StatusAccepted, "")

	t.Run("all deliveries, newest first", func(t *testing.T) {
		all := e.listDeliveries(e.tenantA, "tenant-a", "")
		if len(all) != 2 || all[0].EventID != "evt-pending" || all[1].EventID != "evt-dead" {
			t.Fatalf("list = %+v", all)
		}
		p, d := all[0], all[1]
		if p.Status != "pending" || p.NextAttemptAt == nil || p.Topic != "ticket.created" || p.Extension != "com.acme.tickets" {
			t.Fatalf("pending delivery = %+v", p)
		}
		if d.Status != "dead" || d.Attempts != 1 || d.MaxAttempts != 1 || d.LastError != "guest answered 503" || d.FinishedAt == nil || d.NextAttemptAt != nil {
			t.Fatalf("dead delivery = %+v", d)
		}
	})
	t.Run("by status", func(t *testing.T) {
		dead := e.listDeliveries(e.tenantA, "tenant-a", "?status=dead")
		if len(dead) != 1 || dead[0].EventID != "evt-dead" {
			t.Fatalf("status=dead: %+v", dead)
		}
		if s := e.listDeliveries(e.tenantA, "tenant-a", "?status=succeeded"); len(s) != 0 {
			t.Fatalf("status=succeeded: %+v", s)
		}
		if l := e.listDeliveries(e.tenantA, "tenant-a", "?status=pending&limit=1"); len(l) != 1 || l[0].EventID != "evt-pending" {
			t.Fatalf("status=pending&limit=1: %+v", l)
		}
	})
	t.Run("bad queries are invalid_request naming the field", func(t *testing.T) {
		for q, field := range map[string]string{"?status=done": "status", "?limit=0": "limit", "?limit=501": "limit", "?limit=x": "limit"} {
			r := e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.tickets/deliveries"+q, e.tenantA, nil, nil)
			expect(t, r, 400, "invalid_request")
			if r.details()["field"] != field {
				t.Errorf("%s: details %v", q, r.details())
			}
		}
	})
	t.Run("another tenant sees only its own", func(t *testing.T) {
		b := e.listDeliveries(e.tenantB, "tenant-b", "")
		if len(b) != 1 || b[0].EventID != "evt-b" {
			t.Fatalf("tenant-b list = %+v", b)
		}
		expect(t, e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.tickets/deliveries", e.tenantB, nil, nil), 403, "forbidden")
	})
	t.Run("row-level security: events and deliveries are visible only in their tenant's scope", func(t *testing.T) {
		count := func(scope, table string) int {
			var n int
			err := pgx.BeginFunc(t.Context(), e.db.Pool, func(tx pgx.Tx) error {
				if scope != "" {
					if _, err := tx.Exec(t.Context(), "SELECT set_config('extedge.tenant', $1, true)", scope); err != nil {
						return err
					}
				}
				return tx.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n)
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, tbl := range []string{"extension_event", "extension_event_delivery"} {
			if n := count("", tbl); n != 0 {
				t.Errorf("%s: %d rows visible without the tenant setting", tbl, n)
			}
			if n := count("tenant-b", tbl); n != 1 {
				t.Errorf("%s: tenant-b sees %d rows, want its 1", tbl, n)
			}
			if n := count("tenant-a", tbl); n != 2 {
				t.Errorf("%s: tenant-a sees %d rows, want its 2", tbl, n)
			}
		}
	})
	t.Run("an extension that is not installed is not_installed", func(t *testing.T) {
		expect(t, e.do("GET", "/v1/tenants/tenant-a/installs/com.acme.nope/deliveries", e.tenantA, nil, nil), 404, "not_installed")
	})

	dead := e.listDeliveries(e.tenantA, "tenant-a", "?status=dead")[0]
	retryPath := func(tenant, id string) string {
		return "/v1/tenants/" + tenant + "/installs/com.acme.tickets/deliveries/" + id + "/retry"
	}
	t.Run("another tenant cannot retry it through its own install", func(t *testing.T) {
		expect(t, e.do("POST", retryPath("tenant-b", dead.ID), e.tenantB, nil, nil), 404, "not_found")
		expect(t, e.do("POST", retryPath("tenant-a", dead.ID), e.tenantB, nil, nil), 403, "forbidden")
	})
	t.Run("retry makes a dead delivery deliverable again", func(t *testing.T) {
		r := e.do("POST", retryPath("tenant-a", dead.ID), e.tenantA, nil, nil)
		expect(t, r, 200, "")
		if !jsonHas(r.body, `"status":"pending"`) || !jsonHas(r.body, `"attempts":0`) {
			t.Fatalf("retry reply %s", r.body)
		}
		var leased []registryapi.LeasedDelivery
		for _, d := range e.lease(map[string]any{"limit": 10}) {
			if d.ID == dead.ID {
				leased = append(leased, d)
			}
		}
		if len(leased) != 1 || leased[0].Attempt != 1 {
			t.Fatalf("after retry, leased %+v", leased)
		}
		expect(t, e.finish(leased[0], "complete", nil), 200, "")
	})
	t.Run("only a dead delivery can be retried", func(t *testing.T) {
		r := e.do("POST", retryPath("tenant-a", dead.ID), e.tenantA, nil, nil)
		expect(t, r, 409, "delivery_not_dead")
		if r.details()["status"] != "succeeded" {
			t.Fatalf("details %v", r.details())
		}
		expect(t, e.do("POST", retryPath("tenant-a", "not-a-uuid"), e.tenantA, nil, nil), 404, "not_found")
	})
}

// TestEventMetrics: /metrics counts publishes by outcome, deliveries by
// state change and attempts, lease lag, and the backlog, with no tenant
// labels.
func TestEventMetrics(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 2})
	e.publishEvent("evt-1")
	e.publishEvent("evt-2")
	expect(t, e.do("POST", "/v1/events", e.service, event("evt-1", "tenant-a", "ticket.created"), nil), 200, "")
	expect(t, e.do("POST", "/v1/events", e.service, event("evt 3", "tenant-a", "ticket.created"), nil), 400, "invalid_request")
	metrics := func() string {
		m := e.do("GET", "/metrics", "", nil, nil)
		expect(t, m, 200, "")
		return string(m.body)
	}
	if m := metrics(); !strings.Contains(m, "extedge_registry_event_deliveries_due 2\n") ||
		!strings.Contains(m, "extedge_registry_event_delivery_oldest_due_seconds 0\n") {
		t.Fatalf("backlog before any lease:\n%s", grepLines(m, "event_deliver"))
	}
	clock.add(10 * time.Second)
	for _, d := range e.lease(nil) {
		if d.Event.ID == "evt-1" {
			expect(t, e.finish(d, "complete", nil), 200, "")
		} else {
			expect(t, e.finish(d, "fail", nil), 200, "")
		}
	}
	clock.add(time.Hour) // evt-2's retry (33 s) is long due
	if m := metrics(); !strings.Contains(m, "extedge_registry_event_deliveries_due 1\n") ||
		!strings.Contains(m, "extedge_registry_event_delivery_oldest_due_seconds 3567\n") {
		t.Fatalf("backlog with a retry due for 3567 s:\n%s", grepLines(m, "event_deliver"))
	}
	last := e.lease(map[string]any{"lease_seconds": 5})
	if len(last) != 1 {
		t.Fatalf("leased %+v", last)
	}
	if m := metrics(); !strings.Contains(m, "extedge_registry_event_deliveries_leased 1\n") {
		t.Fatalf("backlog with one lease:\n%s", grepLines(m, "event_deliver"))
	}
	clock.add(5 * time.Second)
	e.lease(nil) // the last attempt's lease expired: dead
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.tickets/deliveries/"+last[0].ID+"/retry", e.tenantA, nil, nil), 200, "")

	m := metrics()
	for _, want := range []string{
		`extedge_registry_events_published_total{outcome="created"} 2`,
		`extedge_registry_events_published_total{outcome="duplicate"} 1`,
		`extedge_registry_events_published_total{outcome="invalid_request"} 1`,
		`extedge_registry_event_deliveries_created_total 2`,
		`extedge_registry_event_delivery_transitions_total{outcome="leased"} 3`,
		`extedge_registry_event_delivery_transitions_total{outcome="succeeded"} 1`,
		`extedge_registry_event_delivery_transitions_total{outcome="retry_scheduled"} 1`,
		`extedge_registry_event_delivery_transitions_total{outcome="dead"} 1`,
		`extedge_registry_event_delivery_transitions_total{outcome="requeued"} 1`,
		`extedge_registry_event_delivery_attempts_sum{outcome="succeeded"} 1`,
		`extedge_registry_event_delivery_attempts_sum{outcome="dead"} 2`,
		`extedge_registry_event_delivery_lag_seconds_count 3`,
		`extedge_registry_event_delivery_lag_seconds_sum 3587`, // 10 + 10 + 3567
		"extedge_registry_event_deliveries_due 1\n",
		"extedge_registry_event_deliveries_leased 0\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("event metrics:\n%s", grepLines(m, "event"))
	}
	if strings.Contains(m, "tenant-a") {
		t.Error("/metrics carries a tenant id")
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEventRetention: the janitor's purge deletes events older than the
// cutoff whose deliveries are all finished, with those deliveries; an
// event with a delivery still pending or leased is kept; a purged id may
// be published again as a new event.
func TestEventRetention(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 1})
	for _, id := range []string{"evt-done", "evt-dead", "evt-waiting", "evt-held"} {
		e.publishEvent(id)
	}
	byEvent := map[string]registryapi.LeasedDelivery{}
	for _, d := range e.lease(nil) {
		byEvent[d.Event.ID] = d
	}
	expect(t, e.finish(byEvent["evt-done"], "complete", nil), 200, "")
	expect(t, e.finish(byEvent["evt-dead"], "fail", nil), 200, "")
	expect(t, e.finish(byEvent["evt-waiting"], "fail", map[string]any{"retryable": true}), 200, "") // 1 attempt: dead too
	// Make evt-waiting pending again, and keep evt-held leased.
	for _, d := range e.listDeliveries(e.tenantA, "tenant-a", "?status=dead") {
		if d.EventID == "evt-waiting" {
			expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.tickets/deliveries/"+d.ID+"/retry", e.tenantA, nil, nil), 200, "")
		}
	}
	clock.add(time.Hour)
	e.publishEvent("evt-recent")

	n, err := e.db.PurgeEvents(t.Context(), clock.now().Add(-time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("PurgeEvents = %d, %v; want the 2 finished old events", n, err)
	}
	left := map[string]string{}
	for _, d := range e.deliveries("tenant-a") {
		left[d.eventID] = d.status
	}
	if len(left) != 3 || left["evt-waiting"] != "pending" || left["evt-held"] != "leased" || left["evt-recent"] != "pending" {
		t.Fatalf("deliveries left = %v", left)
	}
	expect(t, e.do("POST", "/v1/events", e.service, event("evt-done", "tenant-a", "ticket.created"), nil), http.StatusAccepted, "")
	expect(t, e.do("POST", "/v1/events", e.service, event("evt-held", "tenant-a", "ticket.created"), nil), http.StatusOK, "")
}

// TestExpiredLeaseCompleteRacesARelease: when a runner completes a lease
// that has just expired while another runner leases, exactly one wins:
// either the completion counts and nothing is leased, or the delivery is
// leased again and the late completion is lease_lost.
func TestExpiredLeaseCompleteRacesARelease(t *testing.T) {
	e, clock := eventsEnv(t, store.DeliveryPolicy{MaxAttempts: 100})
	c := e.client(e.service)
	for i := range 20 {
		e.publishEvent(fmt.Sprintf("evt-%d", i))
		first := e.lease(map[string]any{"lease_seconds": 5})
		if len(first) != 1 {
			t.Fatalf("round %d: leased %+v", i, first)
		}
		clock.add(5 * time.Second)
		var (
			wg       sync.WaitGroup
			complete error
			leased   []registryapi.LeasedDelivery
			leaseErr error
		)
		wg.Add(2)
		go func() { defer wg.Done(); _, complete = c.CompleteDelivery(t.Context(), first[0].ID, first[0].LeaseID) }()
		go func() { defer wg.Done(); leased, leaseErr = c.LeaseDeliveries(t.Context(), registryapi.LeaseRequest{}) }()
		wg.Wait()
		if leaseErr != nil {
			t.Fatal(leaseErr)
		}
		switch {
		case complete == nil && len(leased) == 0:
		case registryapi.IsCode(complete, "lease_lost") && len(leased) == 1 && leased[0].ID == first[0].ID:
			if _, err := c.CompleteDelivery(t.Context(), leased[0].ID, leased[0].LeaseID); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("round %d: complete = %v, lease = %+v: both or neither won", i, complete, leased)
		}
	}
}
