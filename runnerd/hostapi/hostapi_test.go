package hostapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
)

// fakeUnit is a unit whose prepare step and imports the tests control.
type fakeUnit struct {
	name     string
	imports  []Import
	prepare  func(CallInfo) (State, error)
	finish   func(State, *Report)
	prepared *int // counts prepare steps
}

func (f fakeUnit) Capability() string { return f.name }
func (f fakeUnit) Imports() []Import  { return f.imports }
func (f fakeUnit) Prepare(c CallInfo) (State, error) {
	if f.prepared != nil {
		*f.prepared++
	}
	if f.prepare != nil {
		return f.prepare(c)
	}
	return nil, nil
}
func (f fakeUnit) Finish(st State, r *Report) {
	if f.finish != nil {
		f.finish(st, r)
	}
}

// sealedUnit is a fakeUnit that asks for the secret envelope.
type sealedUnit struct {
	fakeUnit
	got *string
}

func (s sealedUnit) PrepareSecrets(c CallInfo, sealed string) (State, error) {
	*s.got = sealed
	return nil, nil
}

// stdioUnit is a fakeUnit that takes stdio.
type stdioUnit struct{ fakeUnit }

func (stdioUnit) Stdio(State, string, []byte) bool { return true }

func ok(context.Context, State, []byte) (any, error) { return map[string]int{"n": 1}, nil }

func TestNewSet(t *testing.T) {
	var got string
	tests := []struct {
		name string
		caps []Unit
		ok   bool
	}{
		{"dotted import gets an underscore alias", []Unit{fakeUnit{name: "storage.kv", imports: []Import{{Name: "storage.get", JSON: ok}}}}, true},
		{"unknown capability is refused", []Unit{fakeUnit{name: "fs.write", imports: []Import{{Name: "fs.write", JSON: ok}}}}, false},
		{"duplicate import is refused", []Unit{fakeUnit{name: "storage.kv", imports: []Import{{Name: "a.b", JSON: ok}}}, fakeUnit{name: "secrets.get", imports: []Import{{Name: "a_b", JSON: ok}}}}, false},
		{"import without a handler is refused", []Unit{fakeUnit{name: "storage.kv", imports: []Import{{Name: "x"}}}}, false},
		{"only the secrets.get unit may take the secret envelope", []Unit{sealedUnit{fakeUnit{name: "http.fetch", imports: []Import{{Name: "x", JSON: ok}}}, &got}}, false},
		{"two units taking stdio are refused", []Unit{stdioUnit{fakeUnit{name: "log.emit"}}, stdioUnit{fakeUnit{name: "metrics.emit"}}}, false},
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
		fakeUnit{name: "storage.kv", imports: []Import{{Name: "kv.ok", JSON: ok}, {Name: "kv.fail", JSON: func(context.Context, State, []byte) (any, error) {
			return nil, errors.New("dial tcp 10.0.0.7:5432: secret internal detail")
		}}}},
		fakeUnit{name: "metrics.emit", imports: []Import{{Name: "m.emit", JSON: ok}}},
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
	if r := inv.Finish(); r.HostCalls != 4 {
		t.Fatalf("report counts %d host calls, want 4", r.HostCalls)
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

func TestPrepareRunsOnceAndOnlyWhenUsed(t *testing.T) {
	var kvPrepared, fetchPrepared int
	boom := errors.New("boom")
	s, err := NewSet(
		fakeUnit{name: "storage.kv", imports: []Import{{Name: "kv.n", JSON: func(_ context.Context, st State, _ []byte) (any, error) {
			return st, nil
		}}}, prepared: &kvPrepared, prepare: func(c CallInfo) (State, error) { return c.Context.InstallID, nil },
			finish: func(st State, r *Report) { r.EgressBytes += int64(len(st.(string))) }},
		fakeUnit{name: "http.fetch", imports: []Import{{Name: "f.x", JSON: ok}}, prepared: &fetchPrepared,
			prepare: func(CallInfo) (State, error) { return nil, &Error{Code: "egress_denied", Message: "bad allowlist"} }},
		fakeUnit{name: "secrets.get", imports: []Import{{Name: "s.x", JSON: ok}}, prepare: func(CallInfo) (State, error) { return nil, boom }},
	)
	if err != nil {
		t.Fatal(err)
	}
	b := map[string]*Bound{}
	for i := range s.Imports() {
		b[s.Imports()[i].Name] = &s.Imports()[i]
	}
	inv := NewInvocation(context.Background(), &execapi.Request{Context: execapi.Context{InstallID: "inst-1"},
		Capabilities: []string{"storage.kv", "http.fetch"}}, Budgets{})
	for i := 0; i < 3; i++ {
		if out, st := s.CallJSON(inv, b["kv.n"], nil); st != 0 || string(out) != `"inst-1"` {
			t.Fatalf("call %d: %d %s", i, st, out)
		}
	}
	for i := 0; i < 2; i++ {
		if out, st := s.CallJSON(inv, b["f.x"], nil); st != 1 || !strings.Contains(string(out), "egress_denied") {
			t.Fatalf("a prepare error must be every call's reply: %d %s", st, out)
		}
	}
	if _, st := s.CallJSON(inv, b["s.x"], nil); st != 1 {
		t.Fatal("ungranted unit answered")
	}
	if kvPrepared != 1 || fetchPrepared != 1 {
		t.Fatalf("prepared kv %d, fetch %d times; want once each", kvPrepared, fetchPrepared)
	}
	if r := inv.Finish(); r.EgressBytes != int64(len("inst-1")) || r.HostCalls != 6 {
		t.Fatalf("report %+v: finish did not run once for the prepared unit", r)
	}
	if r := inv.Finish(); r.EgressBytes != 0 {
		t.Fatal("finish ran twice")
	}
	unused := NewInvocation(context.Background(), &execapi.Request{}, Budgets{})
	unused.Finish()
	if kvPrepared != 1 {
		t.Fatal("a unit was prepared for a call that never used it")
	}
}

// Only the secrets.get unit receives the sealed envelope; the call info
// other units get has no field that could carry it.
func TestOnlyTheSecretsUnitSeesTheEnvelope(t *testing.T) {
	var got string
	var seen CallInfo
	s, err := NewSet(
		sealedUnit{fakeUnit{name: "secrets.get", imports: []Import{{Name: "secrets.get", JSON: ok}}}, &got},
		fakeUnit{name: "storage.kv", imports: []Import{{Name: "kv.x", JSON: ok}}, prepare: func(c CallInfo) (State, error) { seen = c; return nil, nil }},
	)
	if err != nil {
		t.Fatal(err)
	}
	sealed := "sealed-envelope-xyz"
	inv := NewInvocation(context.Background(), &execapi.Request{Context: execapi.Context{TenantID: "t1"},
		Capabilities: []string{"secrets.get", "storage.kv"}, SecretEnvelope: &sealed, Config: json.RawMessage(`{"a":1}`)}, Budgets{})
	for i := range s.Imports() {
		s.CallJSON(inv, &s.Imports()[i], nil)
	}
	if got != sealed {
		t.Fatalf("secrets unit got %q", got)
	}
	b, _ := json.Marshal(seen)
	if strings.Contains(string(b), sealed) || seen.Context.TenantID != "t1" || string(seen.Config) != `{"a":1}` {
		t.Fatalf("call info of another unit: %s", b)
	}
}
