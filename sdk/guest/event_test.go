package guest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEventDispatch(t *testing.T) {
	rt := newRouter()
	var got *Event
	rt.onEvent("agreement.updated", func(ev *Event) error { got = ev; return nil })
	rt.onEvent("agreement.failing", func(ev *Event) error { return errors.New("vendor down") })
	rt.onEvent("agreement.missing", func(ev *Event) error { return &HostError{Code: CodeNotFound, Message: "no such key"} })
	rt.handle("dist/handlers/on_update", tag("api-handler"))

	cases := []struct {
		name   string
		topic  string
		status int
		code   string
	}{
		{"a handler returning nil acknowledges with 204", "agreement.updated", 204, ""},
		{"a handler error is a 500 the platform retries", "agreement.failing", 500, CodeInternal},
		{"a host error keeps its code and status", "agreement.missing", 404, CodeNotFound},
		{"a topic without a handler is 404 not_found", "agreement.deleted", 404, CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{Context: Context{TenantID: "t1"}, Config: json.RawMessage(`{"a":1}`),
				Endpoint: Endpoint{Handler: "dist/handlers/on_update"},
				Event:    &Event{ID: "e1", Topic: tc.topic, Payload: json.RawMessage(`{"id":"42"}`)}}
			resp := normalize(rt.dispatch(r))
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.Status, tc.status, resp.Body)
			}
			if tc.code != "" && !strings.Contains(string(resp.Body), `"code":"`+tc.code+`"`) {
				t.Fatalf("body %s lacks code %s", resp.Body, tc.code)
			}
		})
	}
	if got == nil || got.ID != "e1" || got.Context.TenantID != "t1" || string(got.Config) != `{"a":1}` {
		t.Fatalf("handler saw %+v", got)
	}
	var p struct{ ID string }
	if err := got.DecodePayload(&p); err != nil || p.ID != "42" {
		t.Fatalf("payload %v %+v", err, p)
	}
}

// TestEventFromTheWire: the request a runner sends for a delivery (http
// and endpoint null, SPEC §18) reaches the topic's handler.
func TestEventFromTheWire(t *testing.T) {
	var seen string
	OnEvent("wire.test", func(ev *Event) error { seen = ev.ID + " " + ev.OccurredAt.UTC().Format("2006-01-02"); return nil })
	raw := `{"context":{"request_id":"dlv-1-1","tenant_id":"t1"},"http":null,"endpoint":null,` +
		`"event":{"id":"ev-9","topic":"wire.test","occurred_at":"2026-12-07T10:00:00Z","payload":{"x":true}}}`
	body, code := serveJSON([]byte(raw))
	if code != ReturnOK || !strings.Contains(string(body), `"status":204`) {
		t.Fatalf("code %d body %s", code, body)
	}
	if seen != "ev-9 2026-12-07" {
		t.Fatalf("handler saw %q", seen)
	}
}

func TestOnEventPanics(t *testing.T) {
	for name, f := range map[string]func(rt *router){
		"empty topic": func(rt *router) { rt.onEvent("", func(*Event) error { return nil }) },
		"nil func":    func(rt *router) { rt.onEvent("a.b", nil) },
		"duplicate": func(rt *router) {
			rt.onEvent("a.b", func(*Event) error { return nil })
			rt.onEvent("a.b", func(*Event) error { return nil })
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f(newRouter())
		})
	}
}
