// Package pgembed supervises a private PostgreSQL server built from the
// system's PostgreSQL binaries: registryd's single-node mode
// (`--database-url embedded:DIR`) and the test harness use it.
//
// Layout under DIR: data/ is the cluster (initdb on first use), run/ holds
// the Unix socket and log/ the server log. By default the server listens
// only on the Unix socket in DIR/run (listen_addresses is empty), local
// connections use trust authentication, and DIR is mode 0700, so only the
// owner of DIR (and root) can connect: there is no network-reachable
// endpoint and no password to leak.
//
// initdb and postgres refuse to run as root. When the process runs as root,
// DIR is chowned to the `postgres` user and the binaries run under that uid
// (set directly through the process credentials rather than `runuser`, so
// signals reach the postmaster itself and a clean shutdown is a SIGINT away).
package pgembed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the bootstrap superuser role created by initdb.
const Superuser = "postgres"

// Options configures Start.
type Options struct {
	// Dir holds data/, run/ and log/. Created when missing.
	Dir string

	// Port is the port number in the socket name (and the TCP port when
	// TCP is set). Default: 5432 for the socket alone; a free port with TCP.
	Port int

	// TCP additionally listens on 127.0.0.1:Port (with trust
	// authentication: for tests only).
	TCP bool

	// Fast turns off fsync and full-page writes: for throwaway test
	// clusters only, never for data that must survive a crash.
	Fast bool

	// StartTimeout bounds initdb plus startup. Default: 60s.
	StartTimeout time.Duration

	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
}

// Server is a running (or attached) PostgreSQL server.
type Server struct {
	// Dir is Options.Dir, absolute.
	Dir string
	// SocketDir is the directory holding the Unix socket.
	SocketDir string
	// Port is the socket's port number (and the TCP port when enabled).
	Port int
	// TCP reports whether 127.0.0.1:Port is served.
	TCP bool

	opts   Options
	bin    string // directory of postgres, initdb
	cmd    *exec.Cmd
	exited chan struct{}
	owned  bool // false when Start attached to a server another process runs
}

// FindBinDir returns the directory holding initdb and postgres: the one of
// `postgres` in PATH when initdb sits next to it, else the newest
// /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("postgres and initdb not found in PATH or /usr/lib/postgresql/*/bin (install the postgresql server package)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises the cluster in opts.Dir on first use, starts the server
// and waits until it accepts connections. If a server is already running on
// that directory (another registryd command), Start attaches to it instead;
// Stop then leaves it running.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgembed: no directory")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.Port == 0 {
		opts.Port = 5432
		if opts.TCP {
			if opts.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	s := &Server{Dir: dir, SocketDir: filepath.Join(dir, "run"), Port: opts.Port, TCP: opts.TCP, opts: opts}
	if len(s.socketPath()) > 100 {
		return nil, fmt.Errorf("pgembed: socket path %s is too long for a Unix socket; use a shorter directory", s.socketPath())
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	if s.ping(ctx) == nil {
		return s, nil // attached to a running server
	}
	if s.bin, err = FindBinDir(); err != nil {
		return nil, err
	}
	cred, err := s.prepareDirs()
	if err != nil {
		return nil, err
	}
	if err := s.initdb(ctx, cred); err != nil {
		return nil, err
	}
	if err := s.start(ctx, cred); err != nil {
		return nil, err
	}
	return s, nil
}

// socketPath is the server's Unix socket.
func (s *Server) socketPath() string {
	return filepath.Join(s.SocketDir, ".s.PGSQL."+strconv.Itoa(s.Port))
}

// prepareDirs creates DIR, run/ and log/ with owner-only permissions, owned
// by the postgres user when running as root. It returns the credential to
// run the binaries with (nil when not root).
func (s *Server) prepareDirs() (*syscall.Credential, error) {
	for _, d := range []string{s.Dir, s.SocketDir, filepath.Join(s.Dir, "log")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgembed: %v", err)
		}
	}
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgembed: running as root needs a `postgres` user to run the server: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(s.Dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return nil, fmt.Errorf("pgembed: chown %s to postgres: %v", s.Dir, err)
	}
	// The postgres user must be able to reach DIR through its parents.
	for p := filepath.Dir(s.Dir); p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("pgembed: %s is not traversable by the postgres user (mode %v); choose a directory whose parents are world-executable", p, fi.Mode().Perm())
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.Dir, "log", "postgres.log") }

// initdb creates the cluster unless data/PG_VERSION exists.
func (s *Server) initdb(ctx context.Context, cred *syscall.Credential) error {
	if _, err := os.Stat(filepath.Join(s.dataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	// A half-finished earlier initdb leaves a directory initdb refuses.
	_ = os.RemoveAll(s.dataDir())
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", s.dataDir(), "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = s.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgembed: initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// start runs the postmaster and waits until it accepts connections.
func (s *Server) start(ctx context.Context, cred *syscall.Credential) error {
	listen := ""
	if s.TCP {
		listen = "127.0.0.1"
	}
	args := []string{
		"-D", s.dataDir(),
		"-p", strconv.Itoa(s.Port),
		"-k", s.SocketDir,
		"-c", "listen_addresses=" + listen,
		"-c", "unix_socket_permissions=0700",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
	}
	if s.opts.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	keys := make([]string, 0, len(s.opts.Settings))
	for k := range s.opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+s.opts.Settings[k])
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: %v", err)
	}
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	var logStart int64
	if fi, err := logFile.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Setpgid:    true,
		// If the supervising process dies, the server shuts down (fast)
		// instead of running unsupervised. (Linux delivers it when the
		// forking thread exits; Go keeps its threads for the process
		// lifetime unless they are locked, which Start does not do.)
		Pdeathsig: syscall.SIGINT,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("pgembed: starting postgres: %v", err)
	}
	s.cmd, s.exited, s.owned = cmd, make(chan struct{}), true
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("pgembed: postgres exited during startup: %s", s.logTail(logStart))
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("pgembed: postgres not ready: %v: %s", err, s.logTail(logStart))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (s *Server) logTail(from int64) string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return ""
	}
	if from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return strings.TrimSpace(string(b))
}

// ping connects as the superuser and runs a trivial query.
func (s *Server) ping(ctx context.Context) error {
	if _, err := os.Stat(s.socketPath()); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, s.URL(Superuser, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(cctx)
	return conn.Ping(cctx)
}

// URL returns a connection URL for role and database over the Unix socket.
func (s *Server) URL(role, database string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", role, database, s.SocketDir, s.Port)
}

// Owned reports whether this process started the server (and Stop stops it).
func (s *Server) Owned() bool { return s.owned }

// Running reports whether the postmaster this Server started is still alive.
func (s *Server) Running() bool {
	if !s.owned {
		return s.ping(context.Background()) == nil
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop shuts the server down: fast shutdown (SIGINT: disconnect clients,
// checkpoint), then immediate (SIGQUIT) after 15 s, then SIGKILL. It is a
// no-op for an attached server or one already stopped.
func (s *Server) Stop() {
	if !s.owned || s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	}
}

// Restart starts a stopped server again on the same directory and port.
func (s *Server) Restart(ctx context.Context) error {
	if !s.owned {
		return errors.New("pgembed: restart of a server this process did not start")
	}
	if s.Running() {
		return nil
	}
	cred, err := s.prepareDirs()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	return s.start(ctx, cred)
}

// EnsureRole creates a LOGIN role that is neither superuser nor
// BYPASSRLS (so row-level security applies to it) unless it exists.
func (s *Server) EnsureRole(ctx context.Context, role string) error {
	conn, err := pgx.Connect(ctx, s.URL(Superuser, "postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE")
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("pgembed: creating role %s: %v", role, err)
	}
	return nil
}

// EnsureDatabase creates database owned by owner unless it exists.
func (s *Server) EnsureDatabase(ctx context.Context, database, owner string) error {
	conn, err := pgx.Connect(ctx, s.URL(Superuser, "postgres"))
	if err != nil {
		return fmt.Errorf("pgembed: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", database).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()+" OWNER "+pgx.Identifier{owner}.Sanitize())
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("pgembed: creating database %s: %v", database, err)
	}
	return nil
}

// DropDatabase drops database, disconnecting its sessions.
func (s *Server) DropDatabase(ctx context.Context, database string) error {
	conn, err := pgx.Connect(ctx, s.URL(Superuser, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{database}.Sanitize()+" WITH (FORCE)")
	return err
}

// isDuplicate reports 42710 duplicate_object (role), 42P04
// duplicate_database, or 23505 when two creators race on a catalog index.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "42P04" || pe.Code == "23505")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
