package main

import (
	"os"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/registryapi"
)

// TestEventsCommands: events publish is idempotent per id, events list
// shows an install's deliveries by status, events retry makes a dead one
// pending again; failures are one line with the registry's code.
func TestEventsCommands(t *testing.T) {
	r := startRegistry(t)
	serviceFile := r.token(t, "service.token", "--role", "service")
	bundlePath, sigPath, _ := packSigned(t, r.keys+"/publisher.key", func(m string) string {
		return strings.Replace(m, `"api":`, `"events": [ { "topic": "ticket.created", "handler": "dist/main" } ], "api":`, 1)
	}, nil)
	r.admin(t, "publish", bundlePath, "--signature", sigPath)
	const ext, tenant = "com.example.cli", "tenant-a"
	r.admin(t, "install", "--tenant", tenant, "--extension", ext)
	svc := func(args ...string) string {
		t.Helper()
		return mustRun(t, append(args, r.flags(serviceFile)...)...)
	}

	type pubOut struct {
		ID         string `json:"id"`
		Deliveries int    `json:"deliveries"`
		Created    bool   `json:"created"`
	}
	p := decodeJSON[pubOut](t, svc("events", "publish", "--tenant", tenant, "--topic", "ticket.created", "--id", "evt-1", "--payload", `{"n":1}`, "--json"))
	if !p.Created || p.ID != "evt-1" || p.Deliveries != 1 {
		t.Fatalf("events publish --json = %+v", p)
	}
	if out := svc("events", "publish", "--tenant", tenant, "--topic", "ticket.created", "--id", "evt-1"); !strings.Contains(out, "already published") {
		t.Fatalf("republish printed %q", out)
	}
	payloadFile := r.dir + "/payload.json"
	os.WriteFile(payloadFile, []byte(`{"from":"file"}`), 0o644)
	if out := svc("events", "publish", "--tenant", tenant, "--topic", "ticket.created", "--payload", "@"+payloadFile); !strings.HasPrefix(out, "published event evt_") ||
		!strings.Contains(out, ": 1 deliveries") {
		t.Fatalf("publish without --id printed %q", out)
	}

	list := decodeJSON[[]registryapi.Delivery](t, r.admin(t, "events", "list", "--tenant", tenant, "--extension", ext, "--json"))
	if len(list) != 2 || list[0].Status != "pending" || list[1].Status != "pending" {
		t.Fatalf("events list = %+v", list)
	}

	// A runner fails evt-1's delivery for good.
	tok, _ := os.ReadFile(serviceFile)
	c := registryapi.New(r.url, strings.TrimSpace(string(tok)), nil)
	leased, err := c.LeaseDeliveries(t.Context(), registryapi.LeaseRequest{Limit: 10})
	if err != nil || len(leased) != 2 {
		t.Fatalf("lease: %+v, %v", leased, err)
	}
	var dead string
	no := false
	for _, d := range leased {
		if d.Event.ID == "evt-1" {
			dead = d.ID
			if _, err := c.FailDelivery(t.Context(), d.ID, registryapi.FailRequest{LeaseID: d.LeaseID, Retryable: &no, Error: "handler missing"}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := c.CompleteDelivery(t.Context(), d.ID, d.LeaseID); err != nil {
			t.Fatal(err)
		}
	}
	out := mustRun(t, append([]string{"events", "list", "--tenant", tenant, "--extension", ext, "--status", "dead"}, r.flags(r.tenantToken)...)...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "DELIVERY") ||
		!strings.Contains(lines[1], dead) || !strings.Contains(lines[1], "evt-1") || !strings.Contains(lines[1], "1/8") || !strings.Contains(lines[1], "handler missing") {
		t.Fatalf("events list --status dead printed:\n%s", out)
	}

	out = mustRun(t, append([]string{"events", "retry", "--tenant", tenant, "--extension", ext, dead}, r.flags(r.tenantToken)...)...)
	if !strings.Contains(out, "delivery "+dead+" of "+ext+" for tenant "+tenant+" is pending again") {
		t.Fatalf("events retry printed %q", out)
	}
	if again, err := c.LeaseDeliveries(t.Context(), registryapi.LeaseRequest{}); err != nil || len(again) != 1 || again[0].ID != dead {
		t.Fatalf("after retry, lease = %+v, %v", again, err)
	}

	t.Run("retrying a delivery that is not dead fails with its code", func(t *testing.T) {
		code, _, errOut := run(t, append([]string{"events", "retry", "--tenant", tenant, "--extension", ext, dead}, r.flags(r.adminToken)...)...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "extctl: "+dead+": delivery_not_dead: ") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("a tenant admin cannot publish events", func(t *testing.T) {
		code, _, errOut := run(t, append([]string{"events", "publish", "--tenant", tenant, "--topic", "ticket.created"}, r.flags(r.tenantToken)...)...)
		oneErrorLine(t, code, errOut, "forbidden")
	})
	t.Run("a bad topic is the registry's invalid_request", func(t *testing.T) {
		code, _, errOut := run(t, append([]string{"events", "publish", "--tenant", tenant, "--topic", "Ticket"}, r.flags(serviceFile)...)...)
		if line := oneErrorLine(t, code, errOut, "invalid_request"); !strings.Contains(line, "field=topic") && !strings.Contains(line, "topic") {
			t.Fatalf("error line %q does not name the topic", line)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"events", "publish", "--tenant", tenant},
			{"events", "publish", "--tenant", tenant, "--topic", "t", "--payload", "{nope"},
			{"events", "publish", "--tenant", tenant, "--topic", "t", "--occurred-at", "yesterday"},
			{"events", "list", "--tenant", tenant},
			{"events", "retry", "--tenant", tenant, "--extension", ext},
		} {
			if code, _, errOut := run(t, args...); code != 2 || !strings.Contains(errOut, "usage: extctl events") {
				t.Errorf("%v: exit %d, %q", args, code, errOut)
			}
		}
	})
}
