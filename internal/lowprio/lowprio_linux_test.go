package lowprio

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunIsAtTheLowestPriorityOnItsOwnThread: f runs at nice 19 on a
// thread of its own, and the caller's thread keeps its priority.
func TestRunIsAtTheLowestPriorityOnItsOwnThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	callerTid := unix.Gettid()
	before, err := unix.Getpriority(unix.PRIO_PROCESS, callerTid)
	if err != nil {
		t.Fatal(err)
	}
	var tid, prio int
	Run(func() {
		tid = unix.Gettid()
		prio, _ = unix.Getpriority(unix.PRIO_PROCESS, tid)
	})
	if tid == callerTid {
		t.Fatal("f ran on the caller's thread")
	}
	// Linux's getpriority syscall answers 20 - nice.
	if prio != 20-nice {
		t.Fatalf("priority inside Run: %d, want %d (nice %d)", prio, 20-nice, nice)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, callerTid); after != before {
		t.Fatalf("caller's priority changed from %d to %d", before, after)
	}
}
