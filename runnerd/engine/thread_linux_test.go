package engine

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func spin(d time.Duration) {
	for start := threadCPU(); threadCPU()-start < d; {
	}
}

// TestLongCallIsDemotedAndShortCallIsNot: a call that burns more CPU than
// the threshold runs the rest of it under SCHED_IDLE at nice 19 and
// reports it; a short one
// does not; the CPU time reported is the thread's.
func TestLongCallIsDemotedAndShortCallIsNot(t *testing.T) {
	var niceDuring int
	var policyDuring uint32
	cpu, demoted := onThread(5*time.Millisecond, func() {
		spin(60 * time.Millisecond)
		p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Error(err)
		}
		niceDuring = p
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			policyDuring = a.Policy
		}
	})
	if !demoted || cpu < 60*time.Millisecond {
		t.Fatalf("60ms spin: demoted %v, cpu %v; want demoted, cpu >= 60ms", demoted, cpu)
	}
	// Linux's getpriority syscall answers 20 - nice.
	if niceDuring != 20-demotedNice {
		t.Fatalf("priority while over the threshold: %d, want %d (nice %d)", niceDuring, 20-demotedNice, demotedNice)
	}
	if policyDuring != unix.SCHED_IDLE {
		t.Errorf("scheduling policy while over the threshold: %d, want SCHED_IDLE (%d)", policyDuring, unix.SCHED_IDLE)
	}
	cpu, demoted = onThread(50*time.Millisecond, func() { spin(time.Millisecond) })
	if demoted || cpu < time.Millisecond {
		t.Fatalf("1ms spin: demoted %v, cpu %v; want not demoted, cpu >= 1ms", demoted, cpu)
	}
}

// TestDemotedThreadDoesNotServeOtherWorkAtLowPriority: where priorities can
// be restored the calling thread is back at nice 0 after the call.
func TestDemotedThreadDoesNotServeOtherWorkAtLowPriority(t *testing.T) {
	if !canRestorePriority() {
		t.Log("this process cannot raise priorities: demoted calls run on throwaway threads")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	policyBefore, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, demoted := onThread(2*time.Millisecond, func() { spin(20 * time.Millisecond) }); !demoted {
		t.Fatal("20ms spin was not demoted")
	}
	after, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if after != before {
		t.Fatalf("calling thread priority %d after a demoted call, was %d", after, before)
	}
	if a, err := unix.SchedGetAttr(0, 0); err != nil || a.Policy != policyBefore.Policy {
		t.Fatalf("calling thread policy after a demoted call: %+v (%v), was %d", a, err, policyBefore.Policy)
	}
}
