package hostapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/extedge/extedge/internal/execapi"
)

type fakeCap struct {
	name    string
	imports []Import
}

func (f fakeCap) Capability() string { return f.name }
func (f fakeCap) Imports() []Import  { return f.imports }

func ok(*Invocation, []byte) (any, error) { return map[string]int{"n": 1}, nil }

func TestNewSet(t *testing.T) {
	tests := []struct {
		name string
		caps []Capability
		ok   bool
	}{
		{"dotted import gets an underscore alias", []Capability{fakeCap{"storage.kv", []Import{{Name: "storage.get", JSON: ok}}}}, true},
		{"unknown capability is refused", []Capability{fakeCap{"fs.write", []Import{{Name: "fs.write", JSON: ok}}}}, false},
		{"duplicate import is refused", []Capability{fakeCap{"storage.kv", []Import{{Name: "a.b", JSON: ok}}}, fakeCap{"secrets.get", []Import{{Name: "a_b", JSON: ok}}}}, false},
		{"import without a handler is refused", []Capability{fakeCap{"storage.kv", []Import{{Name: "x"}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(tt.caps...)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && s.Imports()[0].Alias != "storage_get" {
				t.Fatalf("alias %q", s.Imports()[0].Alias)
			}
		})
	}
}

func TestCallJSONGatesAndReports(t *testing.T) {
	s, err := NewSet(
		fakeCap{"storage.kv", []Import{{Name: "kv.ok", JSON: ok}, {Name: "kv.fail", JSON: func(*Invocation, []byte) (any, error) {
			return nil, errors.New("dial tcp 10.0.0.7:5432: secret internal detail")
		}}}},
		fakeCap{"metrics.emit", []Import{{Name: "m.emit", JSON: ok}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Bound{}
	for i := range s.Imports() {
		byName[s.Imports()[i].Name] = &s.Imports()[i]
	}
	inv := NewInvocation(context.Background(), &execapi.Request{Capabilities: []string{"cap:storage.kv"}}, Budgets{MaxHostCalls: 3})
	code := func(b []byte) string {
		var r struct{ Error Error }
		json.Unmarshal(b, &r)
		return r.Error.Code
	}
	if out, st := s.CallJSON(inv, byName["kv.ok"], nil); st != 0 || string(out) != `{"n":1}` {
		t.Fatalf("granted call: %d %s", st, out)
	}
	out, st := s.CallJSON(inv, byName["kv.fail"], nil)
	if st != 1 || code(out) != CodeInternal || strings.Contains(string(out), "10.0.0.7") {
		t.Fatalf("raw Go errors must become a fixed internal reply: %d %s", st, out)
	}
	denied := NewInvocation(context.Background(), &execapi.Request{}, Budgets{})
	if out, st := s.CallJSON(denied, byName["kv.ok"], nil); st != 1 || code(out) != CodeCapabilityDenied {
		t.Fatalf("ungranted call: %d %s", st, out)
	}
	if _, st := s.CallJSON(denied, byName["m.emit"], nil); st != 0 {
		t.Fatal("always-granted capability was denied")
	}
	s.CallJSON(inv, byName["kv.ok"], nil)
	if out, st := s.CallJSON(inv, byName["kv.ok"], nil); st != 1 || code(out) != CodeLimitExceeded {
		t.Fatalf("call beyond the budget: %d %s", st, out)
	}
}

func TestAddLogBudgets(t *testing.T) {
	inv := NewInvocation(context.Background(), &execapi.Request{}, Budgets{MaxLogBytes: 100, MaxLogLineBytes: 40})
	inv.AddLog("info", "log", []byte(strings.Repeat("a", 30)))
	inv.AddLog("info", "log", []byte(strings.Repeat("é", 30))) // 60 bytes, cut to 40 at a rune boundary
	inv.AddLog("info", "log", []byte(strings.Repeat("b", 50))) // 30 left
	inv.AddLog("info", "log", []byte("dropped"))
	if len(inv.Logs) != 3 || inv.LogBytes != 100 {
		t.Fatalf("%d lines, %d bytes", len(inv.Logs), inv.LogBytes)
	}
	if l := inv.Logs[1]; !l.Truncated || len(l.Message) != 40 || !utf8.ValidString(l.Message) {
		t.Fatalf("line cut badly: %q", l.Message)
	}
	if inv.LogsDropped != 20+20+7 {
		t.Fatalf("dropped %d", inv.LogsDropped)
	}
}

func TestCutUTF8(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},
		{"a€b", 3, "a"},
		{"a€b", 4, "a€"},
		{"😀x", 3, ""},
	} {
		got, _ := CutUTF8([]byte(tt.in), tt.n)
		if string(got) != tt.want {
			t.Errorf("CutUTF8(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestStateIsCreatedOnce(t *testing.T) {
	inv := NewInvocation(context.Background(), &execapi.Request{}, Budgets{})
	n := 0
	for i := 0; i < 3; i++ {
		v, err := inv.State("k", func() (any, error) { n++; return n, nil })
		if err != nil || v.(int) != 1 {
			t.Fatal(v, err)
		}
	}
	boom := errors.New("boom")
	for i := 0; i < 2; i++ {
		if _, err := inv.State("e", func() (any, error) { n++; return nil, boom }); err != boom {
			t.Fatal(err)
		}
	}
	if n != 2 {
		t.Fatalf("create ran %d times", n)
	}
}
