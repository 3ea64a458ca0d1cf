//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/extedge/extedge/sdk/guest"
)

func deliver(t *testing.T, id, payload string) guest.Response {
	t.Helper()
	return guest.Serve(&guest.Request{Context: guest.Context{RequestID: "dlv-1-1", TenantID: "t-1"},
		Event: &guest.Event{ID: id, Topic: topicAgreementUpdated, Payload: json.RawMessage(payload)}})
}

func TestAgreementUpdatedEvent(t *testing.T) {
	h := synced(t)
	t.Run("an update is stored and listed", func(t *testing.T) {
		resp := deliver(t, "ev-1", `{"id":"AGR-1007","client":"Northwind","name":"Renamed","status":"active","monthly_amount":10}`)
		if resp.Status != 204 {
			t.Fatalf("status %d %s", resp.Status, resp.Body)
		}
		raw, rev := h.record(agreementKey("AGR-1007"))
		if rev != 2 || !strings.Contains(string(raw), `"name":"Renamed"`) {
			t.Fatalf("record %s rev %d", raw, rev)
		}
		_, body := call(t, "GET", "/agreements", handlerList, map[string]string{"sort": "name", "page_size": "100"}, nil, nil)
		if !strings.Contains(mustJSON(body), "Renamed") {
			t.Fatalf("list lacks the update: %v", body)
		}
	})
	t.Run("the same event again changes nothing", func(t *testing.T) {
		_, metaRev := h.record(metaKey)
		resp := deliver(t, "ev-1", `{"id":"AGR-1007","client":"Northwind","name":"Renamed","status":"active","monthly_amount":10}`)
		if _, rev := h.record(agreementKey("AGR-1007")); resp.Status != 204 || rev != 2 {
			t.Fatalf("status %d, record revision %d", resp.Status, rev)
		}
		if _, rev := h.record(metaKey); rev != metaRev {
			t.Fatalf("index rewritten: revision %d → %d", metaRev, rev)
		}
	})
	t.Run("a new agreement joins the index", func(t *testing.T) {
		if resp := deliver(t, "ev-2", `{"id":"NEW-1","client":"A","name":"B","status":"active","monthly_amount":1}`); resp.Status != 204 {
			t.Fatalf("status %d %s", resp.Status, resp.Body)
		}
		raw, _ := h.record(metaKey)
		var m meta
		json.Unmarshal(raw, &m)
		if len(m.IDs) != 24 || m.IDs[len(m.IDs)-1] != "NEW-1" || len(m.Order["name"]) != 24 {
			t.Fatalf("index %v", m.IDs)
		}
	})
	t.Run("a payload without an id fails so it is retried", func(t *testing.T) {
		if resp := deliver(t, "ev-3", `{"name":"x"}`); resp.Status != 500 {
			t.Fatalf("status %d", resp.Status)
		}
	})
	t.Run("a failing store fails the delivery", func(t *testing.T) {
		h.putErr = guest.CodeQuotaExceeded
		defer func() { h.putErr = "" }()
		if resp := deliver(t, "ev-4", `{"id":"AGR-1001","name":"y"}`); resp.Status/100 == 2 {
			t.Fatalf("status %d", resp.Status)
		}
	})
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
