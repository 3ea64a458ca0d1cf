package procstat

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestAllFindsThisProcessWithItsCPU(t *testing.T) {
	// Spin until the kernel has charged this process 60 ms of CPU (wall
	// time may be longer on a busy machine).
	for {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			t.Fatal("getrusage failed")
		}
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= 60*time.Millisecond {
			break
		}
	}
	p := All()[os.Getpid()]
	if p == nil {
		t.Fatal("this process is not in All()")
	}
	if p.PPID != os.Getppid() || p.CPU < 40*time.Millisecond || len(p.Cmdline) == 0 || p.Comm == "" {
		t.Fatalf("this process: %+v, want ppid %d, CPU >= 40ms (it spun 60ms of CPU), a command line and name", p, os.Getppid())
	}
}
