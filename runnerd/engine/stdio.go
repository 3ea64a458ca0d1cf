package engine

import (
	"fmt"
	"os"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// stdioCapture collects WASI stdout and stderr through pipes. A reader
// goroutine per stream keeps the first bytes (up to the log budget) and
// discards the rest, so a guest printing without end costs only its own
// CPU time, never disk or memory.
type stdioCapture struct {
	stdout, stderr capture
	outW, errW     *os.File
	done           chan struct{}
}

type capture struct {
	r   *os.File
	max int
	b   []byte
}

func (c *capture) drain(done chan<- struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.r.Read(buf)
		if keep := min(n, c.max-len(c.b)); keep > 0 {
			c.b = append(c.b, buf[:keep]...)
		}
		if err != nil {
			break
		}
	}
	done <- struct{}{}
}

func newStdio(store *wasmtime.Store, keep int) (*stdioCapture, error) {
	s := &stdioCapture{done: make(chan struct{}, 2)}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	s.stdout = capture{r: outR, max: keep}
	s.stderr = capture{r: errR, max: keep}
	s.outW, s.errW = outW, errW
	wc := wasmtime.NewWasiConfig()
	// No preopens, environment or arguments (SPEC §5.4); clocks and random
	// are WASI defaults. wasmtime opens its own descriptors of the pipes'
	// write ends through /proc/self/fd; they close with the store.
	if err := wc.SetStdoutFile(fmt.Sprintf("/proc/self/fd/%d", outW.Fd())); err != nil {
		s.closeAll()
		return nil, err
	}
	if err := wc.SetStderrFile(fmt.Sprintf("/proc/self/fd/%d", errW.Fd())); err != nil {
		s.closeAll()
		return nil, err
	}
	store.SetWasi(wc)
	go s.stdout.drain(s.done)
	go s.stderr.drain(s.done)
	return s, nil
}

func (s *stdioCapture) closeAll() {
	for _, f := range []*os.File{s.stdout.r, s.stderr.r, s.outW, s.errW} {
		f.Close()
	}
}

// pause ends a call of a kept instance (the store stays open, so the
// streams never end): it stops both readers with a read deadline and then
// reads what the guest wrote that they had not read yet. The guest is not
// running, so nothing is written meanwhile and nothing is lost or carried
// to the next call. The captured bytes stay readable until resume.
func (s *stdioCapture) pause() {
	now := time.Now()
	_ = s.stdout.r.SetReadDeadline(now)
	_ = s.stderr.r.SetReadDeadline(now)
	<-s.done
	<-s.done
	s.stdout.readPending()
	s.stderr.readPending()
}

// resume starts capturing for the next call of a kept instance, with an
// empty buffer and a fresh budget.
func (s *stdioCapture) resume(keep int) {
	for _, c := range []*capture{&s.stdout, &s.stderr} {
		c.b, c.max = c.b[:0], keep
		_ = c.r.SetReadDeadline(time.Time{})
		go c.drain(s.done)
	}
}

// readPending reads the bytes still in the pipe (TIOCINQ, alias FIONREAD) after the
// reader stopped; they are available, so reading never blocks.
func (c *capture) readPending() {
	_ = c.r.SetReadDeadline(time.Time{})
	conn, err := c.r.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n := 0
		_ = conn.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
		if n <= 0 {
			return
		}
		got, err := c.r.Read(buf[:min(n, len(buf))])
		if keep := min(got, c.max-len(c.b)); keep > 0 {
			c.b = append(c.b, buf[:keep]...)
		}
		if err != nil {
			return
		}
	}
}

// emit hands what the guest printed in the call to the host set's stdio
// unit (the log unit, which applies the log budget).
func (s *stdioCapture) emit(hosts *hostapi.Set, inv *hostapi.Invocation) {
	for _, f := range []struct {
		b      []byte
		stream string
	}{
		{s.stdout.b, "stdout"},
		{s.stderr.b, "stderr"},
	} {
		for _, line := range splitLines(f.b) {
			if !hosts.Stdio(inv, f.stream, line) {
				break
			}
		}
	}
}

// finish waits for both streams to end (the store must be closed) and
// hands what the guest printed to the host set's stdio unit.
func (s *stdioCapture) finish(hosts *hostapi.Set, inv *hostapi.Invocation) {
	s.outW.Close()
	s.errW.Close()
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for i := 0; i < 2; i++ {
		select {
		case <-s.done:
		case <-timeout.C:
			// A write end is still open somewhere; stop waiting.
			s.stdout.r.Close()
			s.stderr.r.Close()
			<-s.done
		}
	}
	s.stdout.r.Close()
	s.stderr.r.Close()
	s.emit(hosts, inv)
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			lines = append(lines, b[:i])
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return lines
}
