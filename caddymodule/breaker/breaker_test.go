package breaker

import (
	"fmt"
	"testing"
	"time"
)

var policy = Policy{Failures: 3, Cooldown: 10 * time.Second}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// call admits one call of key at now and records o; it reports whether
// the call was allowed.
func call(s *Set, key string, o Outcome, now time.Time) (allowed, opened bool) {
	t, _, ok := s.Allow(key, policy, now)
	if !ok {
		return false, false
	}
	return true, s.Record(key, t, o, policy, now)
}

// openCircuit fails key policy.Failures times at now.
func openCircuit(t *testing.T, s *Set, key string, now time.Time) {
	t.Helper()
	for i := 1; i <= policy.Failures; i++ {
		allowed, opened := call(s, key, Failed, now)
		if !allowed {
			t.Fatalf("failure %d refused before the circuit opened", i)
		}
		if opened != (i == policy.Failures) {
			t.Fatalf("failure %d: opened = %v", i, opened)
		}
	}
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	s := New(16)
	openCircuit(t, s, "inst-1", t0)
	_, retry, ok := s.Allow("inst-1", policy, t0.Add(4*time.Second))
	if ok || retry != 6*time.Second {
		t.Fatalf("open circuit: ok=%v retry=%v; want refused with 6s of cooldown left", ok, retry)
	}
	if allowed, _ := call(s, "inst-2", Good, t0); !allowed {
		t.Fatal("another install is refused")
	}
}

func TestBreakerGoodCallResetsTheCount(t *testing.T) {
	s := New(16)
	for i := 0; i < 10; i++ {
		o := Failed
		if i%policy.Failures == policy.Failures-1 {
			o = Good
		}
		if allowed, opened := call(s, "inst-1", o, t0); !allowed || opened {
			t.Fatalf("call %d: allowed=%v opened=%v; failures were never consecutive", i, allowed, opened)
		}
	}
}

func TestBreakerNeutralCallsNeitherCountNorReset(t *testing.T) {
	s := New(16)
	call(s, "inst-1", Failed, t0)
	call(s, "inst-1", Neutral, t0)
	call(s, "inst-1", Failed, t0)
	if _, opened := call(s, "inst-1", Failed, t0); !opened {
		t.Fatal("three failures around a neutral call did not open the circuit")
	}
}

func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	for _, tc := range []struct {
		name      string
		probe     Outcome
		wantOpen  bool // the circuit is open again after the probe
		wantProbe bool // the next call after the probe is a probe again
	}{
		{"a good probe closes the circuit", Good, false, false},
		{"a failed probe reopens it for another cooldown", Failed, true, false},
		{"a neutral probe lets the next call probe", Neutral, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(16)
			openCircuit(t, s, "inst-1", t0)
			after := t0.Add(policy.Cooldown)
			probe, _, ok := s.Allow("inst-1", policy, after)
			if !ok || !probe.Probe() {
				t.Fatalf("after the cooldown: ok=%v probe=%v; want a probe", ok, probe.Probe())
			}
			if _, retry, ok := s.Allow("inst-1", policy, after); ok || retry != 0 {
				t.Fatalf("second call while probing: ok=%v retry=%v; want refused", ok, retry)
			}
			opened := s.Record("inst-1", probe, tc.probe, policy, after)
			if opened != tc.wantOpen {
				t.Fatalf("opened = %v, want %v", opened, tc.wantOpen)
			}
			next, retry, ok := s.Allow("inst-1", policy, after)
			if tc.wantOpen {
				if ok || retry != policy.Cooldown {
					t.Fatalf("after a failed probe: ok=%v retry=%v; want a full cooldown", ok, retry)
				}
				return
			}
			if !ok || next.Probe() != tc.wantProbe {
				t.Fatalf("next call: ok=%v probe=%v; want allowed, probe=%v", ok, next.Probe(), tc.wantProbe)
			}
		})
	}
}

func TestBreakerIgnoresCallsAdmittedBeforeItChanged(t *testing.T) {
	s := New(16)
	late, _, _ := s.Allow("inst-1", policy, t0) // in flight while the circuit opens
	openCircuit(t, s, "inst-1", t0)
	after := t0.Add(policy.Cooldown)
	probe, _, _ := s.Allow("inst-1", policy, after)
	s.Record("inst-1", late, Good, policy, after)
	if _, _, ok := s.Allow("inst-1", policy, after); ok {
		t.Fatal("a good call admitted before the circuit opened closed it")
	}
	s.Record("inst-1", probe, Good, policy, after)
	late2, _, _ := s.Allow("inst-1", policy, after)
	openCircuit(t, s, "inst-1", after)
	if s.Record("inst-1", late2, Failed, policy, after.Add(time.Second)) {
		t.Fatal("a failure admitted before the circuit opened reopened it")
	}
	if _, retry, _ := s.Allow("inst-1", policy, after); retry != policy.Cooldown {
		t.Fatalf("retry = %v: a stale failure moved the cooldown", retry)
	}
}

func TestBreakerDisabledAllowsEverything(t *testing.T) {
	s := New(16)
	off := Policy{Failures: 0, Cooldown: time.Second}
	for i := 0; i < 10; i++ {
		tk, _, ok := s.Allow("inst-1", off, t0)
		if !ok || s.Record("inst-1", tk, Failed, off, t0) {
			t.Fatalf("call %d: a disabled breaker refused or opened", i)
		}
	}
	// Disabling applies to a circuit that is already open.
	openCircuit(t, s, "inst-2", t0)
	if _, _, ok := s.Allow("inst-2", off, t0); !ok {
		t.Fatal("an open circuit refused a call after the breaker was disabled")
	}
}

func TestBreakerKeepsABoundedNumberOfCircuits(t *testing.T) {
	s := New(4)
	for i := 0; i < 100; i++ {
		call(s, fmt.Sprintf("inst-%d", i), Failed, t0)
	}
	if n := s.circuits.Len(); n != 4 {
		t.Fatalf("%d circuits kept, want 4", n)
	}
	call(s, "healthy", Good, t0)
	if _, found := s.circuits.Peek("healthy"); found {
		t.Fatal("a healthy install got a circuit")
	}
}
