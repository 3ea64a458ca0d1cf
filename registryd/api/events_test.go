package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// publishSubscriber publishes name@version whose manifest subscribes to
// topics (none: no events member).
func (e *env) publishSubscriber(name, version string, topics ...string) {
	e.t.Helper()
	man := manifestFor(name, version)
	evs := []map[string]any{}
	for _, tp := range topics {
		evs = append(evs, map[string]any{"topic": tp, "handler": "dist/main.wasm#on_" + strings.ReplaceAll(tp, ".", "_")})
	}
	if len(evs) == 0 {
		delete(man, "events")
	} else {
		man["events"] = evs
	}
	b := packBundle(e.t, e.signer, man, nil)
	if r := e.publish(e.admin, b); r.status != http.StatusCreated {
		e.t.Fatalf("publish %s@%s: %d %s", name, version, r.status, r.body)
	}
}

// event is a POST /v1/events body.
func event(id, tenant, topic string) map[string]any {
	return map[string]any{"id": id, "tenant_id": tenant, "topic": topic,
		"occurred_at": "2026-12-07T10:00:00Z", "payload": map[string]any{"ticket": 42}}
}

// deliveryRow is one extension_event_delivery row as the tests read it.
type deliveryRow struct {
	id, eventID, extension, handler, status string
	attempts, maxAttempts                   int
	nextAttemptAt                           time.Time
}

// deliveries reads a tenant's delivery rows directly (under its RLS
// scope), ordered by extension name and event id.
func (e *env) deliveries(tenant string) []deliveryRow {
	e.t.Helper()
	var out []deliveryRow
	err := pgx.BeginFunc(context.Background(), e.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), "SELECT set_config('extedge.tenant', $1, true)", tenant); err != nil {
			return err
		}
		rows, err := tx.Query(context.Background(), `SELECT d.id::text, d.event_id, r.name, d.handler, d.status, d.attempts, d.max_attempts, d.next_attempt_at
			FROM extension_event_delivery d JOIN tenant_extension_install i ON i.id = d.install_id JOIN extension_registry r ON r.id = i.registry_id
			WHERE d.tenant_id = $1 ORDER BY r.name, d.event_id`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d deliveryRow
			if err := rows.Scan(&d.id, &d.eventID, &d.extension, &d.handler, &d.status, &d.attempts, &d.maxAttempts, &d.nextAttemptAt); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestPublishEvent: POST /v1/events creates, in its transaction, one
// delivery per enabled install of the event's tenant whose version
// subscribes to the topic, and a repeated id creates nothing.
func TestPublishEvent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publishSubscriber("com.acme.tickets", "1.0.0", "ticket.created", "ticket.closed")
	e.publishSubscriber("com.acme.paused", "1.0.0", "ticket.created")
	e.publishSubscriber("com.acme.other", "1.0.0", "invoice.paid")
	e.publishSubscriber("com.acme.quiet", "1.0.0")
	for _, n := range []string{"com.acme.tickets", "com.acme.paused", "com.acme.other", "com.acme.quiet"} {
		e.install("tenant-a", n, "1.0.0")
	}
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.paused/disable", e.admin, nil, nil), 200, "")
	e.install("tenant-b", "com.acme.tickets", "1.0.0")

	t.Run("one delivery per subscribed enabled install of that tenant", func(t *testing.T) {
		r := e.do("POST", "/v1/events", e.service, event("evt-1", "tenant-a", "ticket.created"), nil)
		expect(t, r, http.StatusAccepted, "")
		var res struct {
			ID         string `json:"id"`
			Deliveries int    `json:"deliveries"`
		}
		r.decode(t, &res)
		if res.ID != "evt-1" || res.Deliveries != 1 {
			t.Fatalf("reply = %+v, want evt-1 with 1 delivery", res)
		}
		got := e.deliveries("tenant-a")
		if len(got) != 1 || got[0].extension != "com.acme.tickets" || got[0].status != "pending" ||
			got[0].handler != "dist/main.wasm#on_ticket_created" || got[0].attempts != 0 || got[0].maxAttempts != 8 {
			t.Fatalf("deliveries = %+v, want one pending for com.acme.tickets (the disabled and unsubscribed installs get none)", got)
		}
		if b := e.deliveries("tenant-b"); len(b) != 0 {
			t.Fatalf("tenant-b got deliveries %+v for tenant-a's event", b)
		}
	})
	t.Run("a repeated id is 200 with the first answer and creates nothing", func(t *testing.T) {
		// Enabling the paused install would make a new event fan out to it.
		expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.paused/enable", e.admin, nil, nil), 200, "")
		ev := event("evt-1", "tenant-a", "ticket.created")
		ev["payload"] = map[string]any{"ticket": 43}
		r := e.do("POST", "/v1/events", e.service, ev, nil)
		expect(t, r, http.StatusOK, "")
		if got := strings.TrimSpace(string(r.body)); got != `{"id":"evt-1","deliveries":1}` {
			t.Fatalf("repeat reply = %s", got)
		}
		if got := e.deliveries("tenant-a"); len(got) != 1 {
			t.Fatalf("a repeat created deliveries: %+v", got)
		}
	})
	t.Run("the same id in another tenant is another event", func(t *testing.T) {
		r := e.do("POST", "/v1/events", e.admin, event("evt-1", "tenant-b", "ticket.created"), nil)
		expect(t, r, http.StatusAccepted, "")
		if got := e.deliveries("tenant-b"); len(got) != 1 || got[0].extension != "com.acme.tickets" {
			t.Fatalf("tenant-b deliveries = %+v", got)
		}
	})
	t.Run("a topic nobody subscribes to is accepted with no deliveries", func(t *testing.T) {
		r := e.do("POST", "/v1/events", e.service, event("evt-2", "tenant-a", "nobody.cares"), nil)
		expect(t, r, http.StatusAccepted, "")
		if !strings.Contains(string(r.body), `"deliveries":0`) {
			t.Fatalf("reply = %s", r.body)
		}
	})
	t.Run("concurrent repeats of one id create one set of deliveries", func(t *testing.T) {
		const n = 8
		statuses := make(chan int, n)
		for range n {
			go func() {
				statuses <- e.do("POST", "/v1/events", e.service, event("evt-race", "tenant-a", "ticket.closed"), nil).status
			}()
		}
		accepted := 0
		for range n {
			switch s := <-statuses; s {
			case http.StatusAccepted:
				accepted++
			case http.StatusOK:
			default:
				t.Errorf("status %d", s)
			}
		}
		if accepted != 1 {
			t.Fatalf("%d of %d concurrent posts were 202, want exactly 1", accepted, n)
		}
		count := 0
		for _, d := range e.deliveries("tenant-a") {
			if d.eventID == "evt-race" {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("evt-race has %d deliveries, want 1", count)
		}
	})
}

// TestPublishEventValidation: each rule of the body has a stable code and
// names the field in details.field; a tenant admin may not publish.
func TestPublishEventValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	with := func(k string, v any) map[string]any {
		ev := event("evt-v", "tenant-a", "ticket.created")
		if v == nil {
			delete(ev, k)
		} else {
			ev[k] = v
		}
		return ev
	}
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"an id is required", with("id", nil), 400, "invalid_request", "id"},
		{"an id with a space is refused", with("id", "evt 1"), 400, "invalid_request", "id"},
		{"an id longer than 256 bytes is refused", with("id", strings.Repeat("x", 257)), 400, "invalid_request", "id"},
		{"a tenant id is required", with("tenant_id", nil), 400, "invalid_request", "tenant_id"},
		{"a tenant id with a slash is refused", with("tenant_id", "a/b"), 400, "invalid_request", "tenant_id"},
		{"the platform scope is not a tenant id", with("tenant_id", "*"), 400, "invalid_request", "tenant_id"},
		{"a topic is required", with("topic", nil), 400, "invalid_request", "topic"},
		{"an upper-case topic is refused", with("topic", "Ticket.Created"), 400, "invalid_request", "topic"},
		{"a topic longer than 256 bytes is refused", with("topic", strings.Repeat("t", 257)), 400, "invalid_request", "topic"},
		{"occurred_at is required", with("occurred_at", nil), 400, "invalid_request", "occurred_at"},
		{"a payload over 256 KiB is payload_too_large", with("payload", strings.Repeat("x", 256<<10)), 413, "payload_too_large", "payload"},
		{"a body far over the bound is payload_too_large", with("payload", strings.Repeat("x", 1<<20)), 413, "payload_too_large", ""},
		{"occurred_at must be RFC 3339", with("occurred_at", "yesterday"), 400, "invalid_request", ""},
		{"unknown fields are refused", with("tenant", "tenant-a"), 400, "invalid_request", ""},
		{"malformed JSON is invalid_request", `{"id":`, 400, "invalid_request", ""},
		{"a payload that is not UTF-8 is refused", "{\"id\":\"e\",\"tenant_id\":\"t\",\"topic\":\"t\",\"occurred_at\":\"2026-12-07T10:00:00Z\",\"payload\":\"\xff\"}", 400, "invalid_request", "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/events", e.service, tc.body, nil)
			expect(t, r, tc.status, tc.code)
			if tc.field != "" && r.details()["field"] != tc.field {
				t.Fatalf("details = %v, want field %q", r.details(), tc.field)
			}
		})
	}
	t.Run("a payload of exactly 256 KiB is accepted", func(t *testing.T) {
		// A JSON string of 256 KiB − 2 characters plus its quotes.
		r := e.do("POST", "/v1/events", e.service, with("payload", strings.Repeat("x", 256<<10-2)), nil)
		expect(t, r, http.StatusAccepted, "")
	})
	t.Run("any JSON value is a payload, NUL escapes and key order included", func(t *testing.T) {
		for i, p := range []string{`"a\u0000b"`, `{"z":1,"a":2}`, `[1,2.50,true,null]`, `12345678901234567890`} {
			body := `{"id":"evt-p` + fmt.Sprint(i) + `","tenant_id":"tenant-a","topic":"ticket.created","occurred_at":"2026-12-07T10:00:00Z","payload":` + p + `}`
			expect(t, e.do("POST", "/v1/events", e.service, body, nil), http.StatusAccepted, "")
		}
	})
	t.Run("a missing payload is null", func(t *testing.T) {
		ev := with("payload", nil)
		ev["id"] = "evt-null"
		expect(t, e.do("POST", "/v1/events", e.service, ev, nil), http.StatusAccepted, "")
	})
	t.Run("a tenant admin may not publish events", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/events", e.tenantA, event("evt-t", "tenant-a", "ticket.created"), nil), 403, "forbidden")
	})
	t.Run("no token is unauthorized", func(t *testing.T) {
		expect(t, e.do("POST", "/v1/events", "", event("evt-t", "tenant-a", "ticket.created"), nil), 401, "unauthorized")
	})
}
