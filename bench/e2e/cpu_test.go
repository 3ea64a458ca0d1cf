package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/extedge/extedge/bench/internal/procstat"
)

// CPU accounting from /proc (Linux): where a scenario's CPU time went,
// per request, so the ratios can be read against what each process cost
// and against what other work on the machine took.

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// cpuSnap is CPU time (user+system) by label at one instant. The labels
// are the stack's processes ("caddy", "runnerd-0", "registryd",
// "postgres"…), "bench" for this test process (load generator and stub)
// and "machine" for every CPU of the host.
type cpuSnap map[string]time.Duration

// takeCPU snapshots the stack whose command lines mention dataDir: each
// such process with its descendants (a PostgreSQL child is labelled
// "postgres" whoever started it).
func takeCPU(dataDir string) cpuSnap {
	s := cpuSnap{}
	procs := procstat.All()
	labels := make(map[int]string, len(procs)) // the stack's own processes
	for pid, p := range procs {
		if pid == os.Getpid() {
			labels[pid] = "bench"
		} else if strings.Contains(strings.Join(p.Cmdline, "\x00"), dataDir) && len(p.Cmdline) > 0 {
			label := filepath.Base(p.Cmdline[0])
			if strings.HasPrefix(label, "runnerd") {
				for _, a := range p.Cmdline {
					if strings.HasPrefix(a, "unix://") {
						label = "runnerd-" + strings.TrimSuffix(strings.TrimPrefix(filepath.Base(a), "runner-"), ".sock")
					}
				}
			}
			if strings.HasPrefix(label, "caddy") {
				label = "caddy"
			}
			labels[pid] = label
		}
	}
	for pid, p := range procs {
		label := ""
		for q, depth := pid, 0; procs[q] != nil && depth < 16; q, depth = procs[q].PPID, depth+1 {
			if labels[q] != "" {
				label = labels[q]
				break
			}
		}
		if label == "" || label == "bench" && labels[pid] != "bench" {
			continue // not ours, or a child of the test process (go tool…)
		}
		if strings.HasPrefix(p.Comm, "postgres") {
			label = "postgres"
		}
		s[label] += p.CPU
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal …: busy is all
		// but idle and iowait.
		for i, v := range f[1:] {
			if i == 3 || i == 4 {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			s["machine"] += time.Duration(n) * clockTick
		}
	}
	return s
}

// cpuLabels orders the columns of the CPU table.
var cpuLabels = []string{"caddy", "runnerd-0", "runnerd-1", "registryd", "postgres", "bench"}

// cpuRow is one scenario's CPU time per successful request.
type cpuRow struct {
	name     string
	requests int64
	wall     time.Duration
	delta    cpuSnap
}

func diffCPU(before, after cpuSnap) cpuSnap {
	d := cpuSnap{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// cpuTable renders CPU microseconds per successful request by process,
// the stack's total (every process but the load generator) with the
// calls per second one core of it sustains (10^6 / that total: the
// number a capacity plan for N cores divides by), ours (the stack plus the
// load generator), and the machine's busy cores during the scenario split
// into ours and everyone else's.
func cpuTable(rows []cpuRow) string {
	const head = "scenario (CPU us per request)"
	w := len(head)
	for _, r := range rows {
		w = max(w, len(r.name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", w, head)
	cols := slices.Clone(cpuLabels)
	for _, c := range cols {
		fmt.Fprintf(&b, " %9s", c)
	}
	fmt.Fprintf(&b, " %9s %11s %9s  %s\n", "stack", "calls/s/core", "ours", "busy cores: ours / others")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s", w, r.name)
		var ours time.Duration
		for _, c := range cols {
			ours += r.delta[c]
			fmt.Fprintf(&b, " %9.0f", perReq(r.delta[c], r.requests))
		}
		stack := perReq(ours-r.delta["bench"], r.requests)
		perCore := 0.0
		if stack > 0 {
			perCore = 1e6 / stack
		}
		others := r.delta["machine"] - ours
		fmt.Fprintf(&b, " %9.0f %11.0f %9.0f  %.2f / %.2f\n", stack, perCore, perReq(ours, r.requests),
			ours.Seconds()/r.wall.Seconds(), max(others, 0).Seconds()/r.wall.Seconds())
	}
	return b.String()
}

func perReq(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}
