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

// demote puts thread tid under SCHED_IDLE with nice 19. Both mean "run
// when nothing else wants the core", but SCHED_IDLE also makes the
// scheduler preempt the thread as soon as a normal thread wakes on its
// core (a nice-19 SCHED_OTHER thread may finish its slice first), which is
// what keeps another tenant's short calls at their quiet latency. Where
// sched_setattr is refused (seccomp), nice 19 alone.
//
// The kernel ignores the nice value of a SCHED_IDLE thread, so it is set
// separately: it is what getpriority and ps report.
func demote(tid int) bool {
	idle := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0) == nil
	return unix.Setpriority(unix.PRIO_PROCESS, tid, demotedNice) == nil || idle
}

// schedOther is SCHED_OTHER (SCHED_NORMAL), the default policy; x/sys/unix
// has no constant for it.
const schedOther = 0

// restore gives thread tid SCHED_OTHER at nice 0 again (allowed with
// CAP_SYS_NICE or an RLIMIT_NICE of 20).
func restore(tid int) bool {
	if unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: schedOther, Nice: 0}, 0) == nil {
		return true
	}
	return unix.Setpriority(unix.PRIO_PROCESS, tid, 0) == nil
}

// onThread runs f locked to one OS thread and returns the CPU time that
// thread used, which is the guest's CPU time (host calls included). Once
// the thread has used more than after of CPU, it is demoted to the lowest
// priority (SCHED_IDLE, nice 19; see demote) for the rest of the call, so that a long call (an
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
func onThread(after time.Duration, atOnce bool, wake time.Duration, f func()) (cpu time.Duration, demoted bool) {
	if after <= 0 || canRestorePriority() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu, demoted = runLocked(after, atOnce, wake, f)
		if demoted {
			_ = restore(unix.Gettid())
		}
		return cpu, demoted
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		cpu, demoted = runLocked(after, atOnce, wake, f)
		if !demoted {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	return cpu, demoted
}

// runLocked runs f on the calling goroutine, which is locked to its
// thread, demoting the thread once it has used after of CPU, or before f
// starts when atOnce is set. A thread still demoted wake after f started
// leaves SCHED_IDLE for SCHED_OTHER at nice 19 (unidle): the lowest
// priority still, but never starved, so a call past its deadline gets the
// CPU it needs to notice the epoch deadline and trap even on cores busy
// with normal work (under SCHED_IDLE it could wait without bound, holding
// its runner slot). wake <= 0 keeps SCHED_IDLE to the end.
func runLocked(after time.Duration, atOnce bool, wake time.Duration, f func()) (cpu time.Duration, demoted bool) {
	tid := unix.Gettid()
	start := threadCPU()
	if after <= 0 {
		f()
		return threadCPU() - start, false
	}
	var (
		mu       sync.Mutex
		over     bool
		finished bool
		timer    *time.Timer
	)
	if atOnce && demote(tid) {
		over = true
	}
	// The timer fires after `after` of wall time; the thread has used at
	// most that much CPU then, so check and re-arm for what is left.
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if over || finished {
			return
		}
		used := threadCPUOf(tid) - start
		if used < after {
			timer.Reset(after - used)
			return
		}
		if demote(tid) {
			over = true
		}
	}
	mu.Lock()
	if !over {
		timer = time.AfterFunc(after, check)
	}
	var waker *time.Timer
	if wake > 0 {
		waker = time.AfterFunc(wake, func() {
			mu.Lock()
			defer mu.Unlock()
			if over && !finished {
				unidle(tid)
			}
		})
	}
	mu.Unlock()
	f()
	cpu = threadCPU() - start
	mu.Lock()
	finished = true
	if timer != nil {
		timer.Stop()
	}
	if waker != nil {
		waker.Stop()
	}
	demoted = over
	mu.Unlock()
	return cpu, demoted
}

// unidle moves a demoted thread from SCHED_IDLE to SCHED_OTHER, keeping
// nice 19 (allowed with an RLIMIT_NICE of at least 1, or CAP_SYS_NICE;
// elsewhere the thread stays under SCHED_IDLE).
func unidle(tid int) bool {
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: schedOther, Nice: demotedNice}, 0) == nil
}

// canRestorePriority reports, once per process, whether a demoted thread
// can be given its normal priority again. It first raises the soft
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
		ok <- demote(tid) && restore(tid)
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
