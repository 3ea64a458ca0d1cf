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

// onThread runs f locked to one OS thread and returns the CPU time that
// thread used, which is the guest's CPU time (host calls included). Once
// the thread has used more than after of CPU, it is demoted to the lowest
// priority (nice 19) for the rest of the call, so that a long call (an
// infinite loop running to its timeout, a CPU-heavy handler) gives way to
// the short calls of other tenants instead of sharing the cores equally
// with them. after <= 0 disables demotion.
//
// Where the process may raise a thread's priority again (CAP_SYS_NICE, or
// an RLIMIT_NICE of 20, e.g. systemd's LimitNICE=20), f runs on the
// calling goroutine and a demoted thread is restored afterwards. Elsewhere
// a demoted thread cannot be restored and must not serve other work, so f
// runs on a goroutine of its own, which exits still locked to a demoted
// thread and the Go runtime ends it; the hand-off costs about 50 µs per
// call on this project's 2-core test machine (bench/runner), against a few
// µs inline.
func onThread(after time.Duration, f func()) (cpu time.Duration, demoted bool) {
	if after <= 0 || canRestorePriority() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu, demoted = runLocked(after, f)
		if demoted {
			_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 0)
		}
		return cpu, demoted
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		cpu, demoted = runLocked(after, f)
		if !demoted {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	return cpu, demoted
}

// runLocked runs f on the calling goroutine, which is locked to its
// thread, demoting the thread once it has used after of CPU.
func runLocked(after time.Duration, f func()) (cpu time.Duration, demoted bool) {
	tid := unix.Gettid()
	start := threadCPU()
	if after <= 0 {
		f()
		return threadCPU() - start, false
	}
	var (
		mu    sync.Mutex
		over  bool
		timer *time.Timer
	)
	// The timer fires after `after` of wall time; the thread has used at
	// most that much CPU then, so check and re-arm for what is left.
	check := func() {
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
	f()
	cpu = threadCPU() - start
	mu.Lock()
	timer.Stop()
	timer = nil
	demoted = over
	mu.Unlock()
	return cpu, demoted
}

// canRestorePriority reports, once per process, whether a thread demoted
// to demotedNice can be given nice 0 again. It first raises the soft
// RLIMIT_NICE to the hard limit (allowed to anyone), then tries it on a
// throwaway thread.
var canRestorePriority = sync.OnceValue(func() bool {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NICE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NICE, &lim)
	}
	ok := make(chan bool)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		tid := unix.Gettid()
		ok <- unix.Setpriority(unix.PRIO_PROCESS, tid, demotedNice) == nil &&
			unix.Setpriority(unix.PRIO_PROCESS, tid, 0) == nil
	}()
	return <-ok
})

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
