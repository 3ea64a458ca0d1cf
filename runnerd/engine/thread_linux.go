package engine

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// demotedNice is the nice value of a demoted call's thread: the lowest
// priority, which under contention gets about 1.5% of a core against one
// thread at nice 0 (CFS weights 15 and 1024) and all of an idle one.
const demotedNice = 19

// onThread runs f on an OS thread of its own and returns the CPU time
// that thread used, which is the guest's CPU time (host calls included).
// Once the thread has used more than after of CPU, it is demoted to the
// lowest priority (nice 19) for the rest of the call, so that a long call
// (an infinite loop running to its timeout, a CPU-heavy handler) gives
// way to the short calls of other tenants instead of sharing the cores
// equally with them. Unprivileged processes cannot raise a thread's
// priority again, so a demoted thread is not reused: its goroutine exits
// still locked to it, and the Go runtime ends the thread. after <= 0
// disables demotion.
func onThread(after time.Duration, f func()) (cpu time.Duration, demoted bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tid := unix.Gettid()
		start := threadCPU()
		var (
			mu    sync.Mutex
			over  bool
			timer *time.Timer
		)
		if after > 0 {
			// The timer fires after `after` of wall time; the thread has
			// used at most that much CPU then, so check and re-arm for
			// what is left.
			var check func()
			check = func() {
				mu.Lock()
				defer mu.Unlock()
				if over || timer == nil {
					return
				}
				used := threadCPUOf(tid) - start
				if used < after {
					timer.Reset(after - used)
					return
				}
				if unix.Setpriority(unix.PRIO_PROCESS, tid, demotedNice) == nil {
					over = true
				}
			}
			mu.Lock()
			timer = time.AfterFunc(after, check)
			mu.Unlock()
		}
		f()
		cpu = threadCPU() - start
		mu.Lock()
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		demoted = over
		mu.Unlock()
		if !demoted {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	return cpu, demoted
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// threadCPUOf is the CPU time of thread tid of this process, through the
// per-thread CPU clock id Linux defines for it (what glibc's
// pthread_getcpuclockid returns: ^tid << 3 | CPUCLOCK_PERTHREAD (4) |
// CPUCLOCK_SCHED (2)).
func threadCPUOf(tid int) time.Duration {
	var ts unix.Timespec
	clock := int32(^uint32(tid)<<3 | 4 | 2)
	if unix.ClockGettime(clock, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
