package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// TestEventsSurviveARestart: everything about a delivery is in Postgres.
// An event published to one registryd process that is then killed is
// leased from the next; a lease held when registryd is killed expires and
// the delivery is leased again.
func TestEventsSurviveARestart(t *testing.T) {
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	opts := testenv.RegistrydOptions{DatabaseURL: pg.URL(), BundleStore: "file://" + filepath.Join(dir, "blobs"), Args: []string{"--allow-unsigned"}}
	first := testenv.Registryd(t, opts)
	admin := registryapi.New(first.URL, first.Token(t, "--role", "platform_admin"), nil)
	serviceToken := first.Token(t, "--role", "service")
	ctx := t.Context()

	publishSubscriber(t, admin, filepath.Join(dir, "src"), "com.acme.tickets")
	if _, err := admin.PutInstall(ctx, "tenant-a", "com.acme.tickets", registryapi.InstallRequest{}); err != nil {
		t.Fatal(err)
	}
	res, err := registryapi.New(first.URL, serviceToken, nil).PublishEvent(ctx, registryapi.Event{
		ID: "evt-1", TenantID: "tenant-a", Topic: "ticket.created", OccurredAt: time.Now(), Payload: json.RawMessage(`{"n":1}`)})
	if err != nil || res.Deliveries != 1 {
		t.Fatalf("publish event: %+v, %v", res, err)
	}
	first.Kill()

	second := testenv.Registryd(t, opts)
	svc := registryapi.New(second.URL, serviceToken, nil)
	got, err := svc.LeaseDeliveries(ctx, registryapi.LeaseRequest{LeaseSeconds: 5})
	if err != nil || len(got) != 1 || got[0].Event.ID != "evt-1" || string(got[0].Event.Payload) != `{"n":1}` {
		t.Fatalf("lease after a restart: %+v, %v", got, err)
	}
	second.Kill()

	third := testenv.Registryd(t, opts)
	svc = registryapi.New(third.URL, serviceToken, nil)
	var again []registryapi.LeasedDelivery
	testenv.WaitFor(t, 20*time.Second, func() error {
		again, err = svc.LeaseDeliveries(ctx, registryapi.LeaseRequest{})
		if err == nil && len(again) == 0 {
			return errNothingLeased
		}
		return err
	})
	if again[0].ID != got[0].ID || again[0].Attempt != 2 {
		t.Fatalf("after the lease expired: %+v, want %s at attempt 2", again, got[0].ID)
	}
	if out, err := svc.CompleteDelivery(ctx, again[0].ID, again[0].LeaseID); err != nil || out.Status != registryapi.DeliverySucceeded {
		t.Fatalf("complete: %+v, %v", out, err)
	}
}

var errNothingLeased = errors.New("nothing leased yet")

// TestEventFanOutIsAllOrNothingAcrossAKill: an event's fan-out is written
// in the transaction that records the event, so a registryd killed while
// publishing leaves either the event with a delivery for every subscribed
// install or nothing, and the publisher's retry of the same id completes
// it exactly once. The kill lands at a different moment in each round (a
// few hundred microseconds to a few milliseconds after the request is
// sent); whether a round hits the transaction itself is up to the
// scheduler, the invariant is checked in every round.
func TestEventFanOutIsAllOrNothingAcrossAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts registryd several times")
	}
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	opts := testenv.RegistrydOptions{DatabaseURL: pg.URL(), BundleStore: "file://" + filepath.Join(dir, "blobs"), Args: []string{"--allow-unsigned"}}
	reg := testenv.Registryd(t, opts)
	admin := registryapi.New(reg.URL, reg.Token(t, "--role", "platform_admin"), nil)
	serviceToken := reg.Token(t, "--role", "service")
	ctx := t.Context()

	const installs = 40
	for i := range installs {
		name := fmt.Sprintf("com.acme.fan%02d", i)
		publishSubscriber(t, admin, filepath.Join(dir, name), name)
		if _, err := admin.PutInstall(ctx, "tenant-a", name, registryapi.InstallRequest{}); err != nil {
			t.Fatal(err)
		}
	}

	leased := map[string]int{} // event id → deliveries leased
	leaseAll := func(svc *registryapi.Client) {
		for {
			got, err := svc.LeaseDeliveries(ctx, registryapi.LeaseRequest{Limit: 100, LeaseSeconds: 3600})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				return
			}
			for _, d := range got {
				leased[d.Event.ID]++
			}
		}
	}
	for round, delay := range []time.Duration{300 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond} {
		id := fmt.Sprintf("evt-kill-%d", round)
		ev := registryapi.Event{ID: id, TenantID: "tenant-a", Topic: "ticket.created", OccurredAt: time.Now(), Payload: json.RawMessage(`{}`)}
		sent := make(chan struct{})
		go func() {
			close(sent)
			_, _ = registryapi.New(reg.URL, serviceToken, nil).PublishEvent(ctx, ev) // may die with the process
		}()
		<-sent
		time.Sleep(delay)
		reg.Kill()
		<-reg.Exited()

		reg = testenv.Registryd(t, opts)
		svc := registryapi.New(reg.URL, serviceToken, nil)
		leaseAll(svc)
		if n := leased[id]; n != 0 && n != installs {
			t.Fatalf("round %d (kill after %v): %d deliveries of %s survived, want 0 or %d", round, delay, n, id, installs)
		}
		before := leased[id]
		res, err := svc.PublishEvent(ctx, ev) // the publisher's retry
		if err != nil || res.Deliveries != installs || res.Created == (before == installs) {
			t.Fatalf("round %d: retry after the kill: %+v, %v (deliveries leased before: %d)", round, res, err, before)
		}
		leaseAll(svc)
		if leased[id] != installs {
			t.Fatalf("round %d: %d deliveries of %s in all, want exactly %d", round, leased[id], id, installs)
		}
		t.Logf("round %d: kill after %v left %d of %d deliveries (the rest came with the retry)", round, delay, before, installs)
	}
}

// publishSubscriber packs and publishes (unsigned) extension name 1.0.0,
// whose manifest subscribes a placeholder module to ticket.created, from a
// tree written under src.
func publishSubscriber(t *testing.T, admin *registryapi.Client, src, name string) {
	t.Helper()
	man, _ := json.Marshal(map[string]any{
		"name": name, "publisher": "Acme Inc.", "version": "1.0.0", "runtime": "wasm@1",
		"entry": "dist/main.wasm", "events": []map[string]any{{"topic": "ticket.created", "handler": "dist/main.wasm"}},
	})
	for p, c := range map[string]string{"manifest.json": string(man), "dist/main.wasm": "\x00asm\x01\x00\x00\x00"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var packed bytes.Buffer
	if _, err := bundle.Pack(src, &packed); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Publish(t.Context(), bytes.NewReader(packed.Bytes()), int64(packed.Len()), nil); err != nil {
		t.Fatal(err)
	}
}
