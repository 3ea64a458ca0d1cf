package lowprio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// nice is the priority of the copying thread.
const nice = 19

func run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
		f()
	}()
	<-done
}
