package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SocketMode is the permission of runner Unix sockets: the gateway's group
// may connect, nobody else.
const SocketMode = 0o660

// Listen opens a listener for "unix:///abs/path" or "tcp://host:port"
// (SPEC §15). A stale Unix socket file (nothing accepting on it) is
// replaced; a live one, or a path that is not a socket, is an error.
func Listen(addr string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return listenUnix(strings.TrimPrefix(addr, "unix://"))
	case strings.HasPrefix(addr, "tcp://"):
		hostport := strings.TrimPrefix(addr, "tcp://")
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return nil, fmt.Errorf("listen address %q: %v", addr, err)
		}
		return net.Listen("tcp", hostport)
	}
	return nil, fmt.Errorf("listen address %q must be unix:///abs/path or tcp://host:port", addr)
}

// ListenAll opens every address with Listen; on failure none stays open.
// With tlsCfg, tcp:// listeners serve TLS (tlsconf.Server, SPEC §12);
// Unix sockets stay plain: only processes that may open the socket file
// reach them.
func ListenAll(addrs []string, tlsCfg *tls.Config) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, a := range addrs {
		l, err := Listen(a)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, err
		}
		if tlsCfg != nil && l.Addr().Network() == "tcp" {
			l = tls.NewListener(l, tlsCfg)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("unix socket path %q must be absolute", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %v", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting socket mode: %v", err)
	}
	return l, nil
}

// ServeOptions are Serve's error log and its drain once the context ends
// (SIGTERM).
type ServeOptions struct {
	// ErrorLog receives the HTTP server's own errors (failed TLS
	// handshakes, broken connections). Default: the log package's
	// standard logger.
	ErrorLog *log.Logger
	// Drain runs at once when the context ends, before DrainDelay: for the
	// runner, Server.Drain, which makes /readyz answer 503 so that probes
	// and the gateway stop choosing this process.
	Drain func()
	// DrainDelay keeps the listeners accepting and serving for this long
	// after Drain, for callers that have not noticed /readyz fail yet.
	// Replies sent meanwhile close their connection, so no idle keep-alive
	// connection is cut under a client when the listeners close.
	// Default: 0.
	DrainDelay time.Duration
	// Grace bounds the wait for calls in flight once the listeners have
	// closed; calls still running then are cut off.
	Grace time.Duration
}

// Serve serves h on every listener until ctx ends, then drains as opts
// say: Drain, DrainDelay with the listeners still open, close the
// listeners, wait up to Grace for calls in flight. It returns the first
// serve error (which skips what is left of DrainDelay), or nil after a
// clean drain.
func Serve(ctx context.Context, h http.Handler, listeners []net.Listener, opts ServeOptions) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          opts.ErrorLog,
	}
	errc := make(chan error, len(listeners))
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(l)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		if opts.Drain != nil {
			opts.Drain()
		}
		if opts.DrainDelay > 0 {
			srv.SetKeepAlivesEnabled(false)
			t := time.NewTimer(opts.DrainDelay)
			select {
			case <-t.C:
			case serveErr = <-errc:
				t.Stop()
			}
		}
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.Grace)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	wg.Wait()
	if serveErr != nil {
		return serveErr
	}
	if shutdownErr != nil {
		return fmt.Errorf("draining: %v", shutdownErr)
	}
	return nil
}
