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
	cpu, demoted := onThread(5*time.Millisecond, false, 0, func() {
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
	cpu, demoted = onThread(50*time.Millisecond, false, 0, func() { spin(time.Millisecond) })
	if demoted || cpu < time.Millisecond {
		t.Fatalf("1ms spin: demoted %v, cpu %v; want not demoted, cpu >= 1ms", demoted, cpu)
	}
}

// TestStartDemotedRunsTheWholeCallAtTheLowestPriority: a call started
// demoted (its install's recent calls were long) is under SCHED_IDLE from
// its first instruction, however short it is.
func TestStartDemotedRunsTheWholeCallAtTheLowestPriority(t *testing.T) {
	var policyDuring uint32
	cpu, demoted := onThread(time.Second, true, 0, func() {
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			policyDuring = a.Policy
		}
		spin(time.Millisecond)
	})
	if !demoted || cpu < time.Millisecond {
		t.Fatalf("started demoted: demoted %v, cpu %v; want demoted, cpu >= 1ms", demoted, cpu)
	}
	if policyDuring != unix.SCHED_IDLE {
		t.Fatalf("policy at the call's start: %d, want SCHED_IDLE (%d)", policyDuring, unix.SCHED_IDLE)
	}
	if _, demoted := onThread(0, true, 0, func() {}); demoted {
		t.Fatal("with demotion off a call started demoted anyway")
	}
}

// TestDemotedCallPastItsWakeLeavesSchedIdle: a demoted call still running
// when its budget is over moves to SCHED_OTHER at nice 19, so it cannot be
// starved while it has to notice its deadline.
func TestDemotedCallPastItsWakeLeavesSchedIdle(t *testing.T) {
	var before, after uint32
	_, demoted := onThread(time.Millisecond, true, 20*time.Millisecond, func() {
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			before = a.Policy
		}
		time.Sleep(60 * time.Millisecond) // the thread is locked: it sleeps, the waker fires
		if a, err := unix.SchedGetAttr(0, 0); err == nil {
			after = a.Policy
		}
	})
	if !demoted || before != unix.SCHED_IDLE {
		t.Fatalf("demoted %v, policy at start %d; want demoted under SCHED_IDLE", demoted, before)
	}
	if after != schedOther {
		t.Fatalf("policy past the wake time: %d, want SCHED_OTHER (%d)", after, schedOther)
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
	if _, demoted := onThread(2*time.Millisecond, false, 0, func() { spin(20 * time.Millisecond) }); !demoted {
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
