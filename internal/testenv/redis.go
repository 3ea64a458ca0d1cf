package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisStartTimeout bounds how long redis-server may take to answer PING.
const redisStartTimeout = 10 * time.Second

// RedisServer is a redis-server child process listening on 127.0.0.1 with
// persistence off. Stop and Start take it down and bring it back on the same
// port (with an empty dataset, since nothing is saved).
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// Redis starts a private redis-server for t and stops it when t ends. The
// binary comes from $REDIS_BIN or PATH (Debian: `apt-get install redis-server`).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	bin := requireBinary(t, func() (string, error) {
		return findBinary("redis-server", "REDIS_BIN", "/usr/bin", "/usr/local/bin")
	}, "EXTEDGE_SKIP_REDIS", "apt-get install redis-server")

	s := &RedisServer{t: t, bin: bin, dir: t.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: finding a free port: %v", err)
		}
		s.port = port
		lastErr = s.start()
		if lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
		if !errors.Is(lastErr, errPortInUse) {
			break
		}
	}
	t.Fatalf("testenv: starting redis: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is the server's redis:// URL, database 0.
func (s *RedisServer) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Stop kills the server and waits for it to exit; the port stays reserved
// for Start. Call it from the goroutine of the test that created the server.
func (s *RedisServer) Stop() {
	s.stop()
}

// Start brings a stopped server back on the same port and waits until it
// answers PING. Call it from the goroutine of the test that created the server.
func (s *RedisServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restarting redis on %s: %v", s.Addr(), err)
	}
}

func (s *RedisServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", "",
	}
	p, err := launch(s.bin, args, nil, filepath.Join(s.dir, "redis.log"), redisStartTimeout,
		func() error { return pingRedis(s.Addr()) })
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

func (s *RedisServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.stop()
	s.proc = nil
}

// pingRedis sends an inline PING and expects +PONG, without a client library.
func pingRedis(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
