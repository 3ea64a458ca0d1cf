// Package procstat reads processes from Linux's /proc (on other systems
// All finds none) for the benchmarks'
// CPU-per-request tables: one home for parsing /proc/PID/stat (user and
// system time, parent, command name) and the command line.
package procstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat.
const clockTick = 10 * time.Millisecond

// Proc is one process.
type Proc struct {
	PID, PPID int
	Comm      string        // the command name in stat's parentheses
	Cmdline   []string      // argv; empty for kernel threads
	CPU       time.Duration // user + system time so far
}

// All reads every process visible now; processes that end while it reads
// are left out.
func All() map[int]*Proc {
	out := map[int]*Proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if p := read(pid, d); p != nil {
			out[pid] = p
		}
	}
	return out
}

func read(pid int, dir string) *Proc {
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil
	}
	open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
	if open < 0 || end < open {
		return nil
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 13 {
		return nil
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	p := &Proc{PID: pid, PPID: ppid, Comm: string(stat[open+1 : end]), CPU: time.Duration(ut+st) * clockTick}
	if cmd, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmd) > 0 {
		p.Cmdline = strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	}
	return p
}
