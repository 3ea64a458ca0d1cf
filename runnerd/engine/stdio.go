package engine

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"

	"github.com/extedge/extedge/runnerd/hostapi"
)

// stdioCapture collects WASI stdout and stderr through pipes. A reader
// goroutine per stream keeps the first bytes (up to the log budget) and
// discards the rest, so a guest printing without end costs only its own
// CPU time, never disk or memory.
//
// The readers live as long as the store: a fresh instance's end when the
// store closes (end of file), a kept instance's (SPEC §6.5) serve all its
// calls, and take ends each call without waking them.
type stdioCapture struct {
	stdout, stderr capture
	outW, errW     *os.File
	done           chan struct{}
}

// capture is one stream. Every read from the pipe happens under mu, so
// whoever holds mu knows that all bytes taken out of the pipe are in b.
type capture struct {
	r   *os.File
	buf []byte // the reader's scratch buffer, used under mu

	mu  sync.Mutex
	max int
	b   []byte
}

// drain reads until end of file or until r is closed, waiting for data in
// the runtime's poller (no thread is held while the pipe is empty).
func (c *capture) drain(done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	conn, err := c.r.SyscallConn()
	if err != nil {
		return
	}
	eof := false
	_ = conn.Read(func(fd uintptr) bool {
		eof = c.readAvailable(int(fd))
		return eof
	})
}

// readAvailable reads what the pipe holds, under mu, until it would
// block; it reports end of file (or a read error).
func (c *capture) readAvailable(fd int) (ended bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		n, err := unix.Read(fd, c.buf)
		if n > 0 {
			if keep := min(n, c.max-len(c.b)); keep > 0 {
				c.b = append(c.b, c.buf[:keep]...)
			}
			continue
		}
		if err == unix.EINTR {
			continue
		}
		return err != unix.EAGAIN // n == 0 is end of file
	}
}

// take ends a call of a kept instance: with mu held no read is under way,
// so after reading what is still in the pipe (the guest is not running,
// nothing more arrives) b is exactly what the call printed. It returns
// that; until begin, nothing more is kept.
func (c *capture) take() []byte {
	conn, err := c.r.SyscallConn()
	if err == nil {
		_ = conn.Control(func(fd uintptr) { c.readAvailable(int(fd)) })
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.b
	c.b, c.max = nil, 0
	return out
}

// begin starts a call of a kept instance with a budget of keep bytes.
func (c *capture) begin(keep int) {
	c.mu.Lock()
	c.max = keep
	c.mu.Unlock()
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
	s.stdout = capture{r: outR, max: keep, buf: make([]byte, 32<<10)}
	s.stderr = capture{r: errR, max: keep, buf: make([]byte, 32<<10)}
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

// beginCall starts a call of a kept instance: keep bytes per stream.
func (s *stdioCapture) beginCall(keep int) {
	s.stdout.begin(keep)
	s.stderr.begin(keep)
}

// endCall ends a call of a kept instance and returns what it printed on
// stdout and stderr.
func (s *stdioCapture) endCall() (stdout, stderr []byte) {
	return s.stdout.take(), s.stderr.take()
}

// emit hands what the guest printed in a call to the host set's stdio
// unit (the log unit, which applies the log budget).
func emit(hosts *hostapi.Set, inv *hostapi.Invocation, stdout, stderr []byte) {
	for _, f := range []struct {
		b      []byte
		stream string
	}{
		{stdout, "stdout"},
		{stderr, "stderr"},
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
	emit(hosts, inv, s.stdout.b, s.stderr.b)
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
