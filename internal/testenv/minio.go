package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// minioInstallHint is the command that installs the MinIO server at the
// version the repository is tested with.
const minioInstallHint = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// minioStartTimeout bounds how long MinIO may take to become live and accept
// a bucket; the first start on a cold disk takes a few seconds.
const minioStartTimeout = 60 * time.Second

// MinIOServer is a MinIO server child process on 127.0.0.1 with a bucket of
// its own. Servers from MinIO can be stopped and restarted on the same port
// and data directory; servers from SharedMinIO cannot (other tests use them).
type MinIOServer struct {
	// Endpoint is host:port, plain HTTP.
	Endpoint string
	// Bucket exists and belongs to this caller.
	Bucket string
	// AccessKey and SecretKey are the root credentials, random per server.
	AccessKey, SecretKey string

	t      testing.TB
	server *minioProcess
	shared bool
}

// URL is the blob store URL for this server and bucket, with credentials:
// s3://bucket?endpoint=127.0.0.1:N&region=us-east-1&path_style=true&tls=false&access_key=…&secret_key=…
func (m *MinIOServer) URL() string {
	q := url.Values{}
	q.Set("endpoint", m.Endpoint)
	q.Set("region", "us-east-1")
	q.Set("path_style", "true")
	q.Set("tls", "false")
	q.Set("access_key", m.AccessKey)
	q.Set("secret_key", m.SecretKey)
	return "s3://" + m.Bucket + "?" + q.Encode()
}

// Client returns a minio-go client with root credentials, for tests that
// inspect the bucket directly.
func (m *MinIOServer) Client() *minio.Client {
	return m.server.client
}

// NewBucket creates another empty bucket on the same server and returns its name.
func (m *MinIOServer) NewBucket(t testing.TB) string {
	t.Helper()
	name, err := m.server.newBucket()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return name
}

// Stop kills the server and waits for it to exit, keeping port and data.
// Call it from the goroutine of the test that created the server.
func (m *MinIOServer) Stop() {
	m.t.Helper()
	if m.shared {
		m.t.Fatalf("testenv: Stop on a shared MinIO server; use testenv.MinIO(t) for fault tests")
	}
	m.server.stop()
}

// Start brings a stopped server back on the same port and data directory and
// waits until it serves the bucket again. Call it from the goroutine of the
// test that created the server.
func (m *MinIOServer) Start() {
	m.t.Helper()
	if m.shared {
		m.t.Fatalf("testenv: Start on a shared MinIO server; use testenv.MinIO(t) for fault tests")
	}
	if err := m.server.start(); err != nil {
		m.t.Fatalf("testenv: restarting minio on %s: %v", m.Endpoint, err)
	}
}

// MinIO starts a private MinIO server for t, with data under t.TempDir(), and
// stops it when t ends. Startup takes seconds; prefer SharedMinIO unless the
// test stops or restarts the server.
//
// The binary comes from $MINIO_BIN, PATH or $(go env GOPATH)/bin.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	bin := requireMinIO(t)
	srv, err := startMinIO(bin, t.TempDir())
	if err != nil {
		t.Fatalf("testenv: starting minio: %v", err)
	}
	t.Cleanup(srv.stop)
	return srv.view(t, srv.firstBucket, false)
}

var (
	sharedMinIOOnce sync.Once
	sharedMinIO     *minioProcess
	sharedMinIOErr  error
)

// SharedMinIO returns a view of one MinIO server shared by every test in the
// binary, with a fresh bucket for this caller. The server starts on first use
// and is stopped by Main; a package without `func TestMain(m *testing.M) {
// testenv.Main(m) }` gets a private server per call instead, so nothing leaks.
// Shared servers cannot be stopped or restarted.
func SharedMinIO(t testing.TB) *MinIOServer {
	t.Helper()
	bin := requireMinIO(t)
	if !mainActive.Load() {
		return MinIO(t)
	}
	sharedMinIOOnce.Do(func() {
		dir, err := os.MkdirTemp("", "extedge-minio-")
		if err != nil {
			sharedMinIOErr = err
			return
		}
		srv, err := startMinIO(bin, dir)
		if err != nil {
			os.RemoveAll(dir)
			sharedMinIOErr = err
			return
		}
		sharedMinIO = srv
		registerShared(func() {
			srv.stop()
			os.RemoveAll(dir)
		})
	})
	if sharedMinIOErr != nil {
		t.Fatalf("testenv: starting shared minio: %v", sharedMinIOErr)
	}
	bucket, err := sharedMinIO.newBucket()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return sharedMinIO.view(t, bucket, true)
}

func requireMinIO(t testing.TB) string {
	t.Helper()
	return requireBinary(t, findMinIO, "EXTEDGE_SKIP_MINIO", minioInstallHint)
}

// findMinIO is cached: resolving GOPATH runs `go env`, and every test asks.
var findMinIO = sync.OnceValues(lookupMinIO)

func lookupMinIO() (string, error) {
	var dirs []string
	if gopath := goEnv("GOPATH"); gopath != "" {
		for _, p := range filepath.SplitList(gopath) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return findBinary("minio", "MINIO_BIN", dirs...)
}

// goEnv asks the go command for a setting, falling back to the environment.
func goEnv(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// minioProcess is one MinIO server (port, data and credentials) across
// restarts.
type minioProcess struct {
	bin         string
	dir         string // holds data/, certs/ and minio.log
	port        int
	accessKey   string
	secretKey   string
	client      *minio.Client
	buckets     atomic.Int64
	firstBucket string

	mu   sync.Mutex
	proc *process // nil while stopped
}

// startMinIO starts a server with data under dir on a free port (retrying a
// lost port race) and creates its first bucket.
func startMinIO(bin, dir string) (*minioProcess, error) {
	srv := &minioProcess{
		bin:       bin,
		dir:       dir,
		accessKey: "extedge-" + randomHex(6),
		secretKey: randomHex(20),
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		srv.port, err = freePort()
		if err != nil {
			return nil, err
		}
		srv.client, err = minio.New(srv.endpoint(), &minio.Options{
			Creds:        credentials.NewStaticV4(srv.accessKey, srv.secretKey, ""),
			Region:       "us-east-1",
			BucketLookup: minio.BucketLookupPath,
		})
		if err != nil {
			return nil, err
		}
		if err = srv.start(); err == nil || !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if srv.firstBucket, err = srv.newBucket(); err != nil {
		srv.stop()
		return nil, err
	}
	return srv, nil
}

func (s *minioProcess) endpoint() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

func (s *minioProcess) view(t testing.TB, bucket string, shared bool) *MinIOServer {
	return &MinIOServer{
		Endpoint:  s.endpoint(),
		Bucket:    bucket,
		AccessKey: s.accessKey,
		SecretKey: s.secretKey,
		t:         t,
		server:    s,
		shared:    shared,
	}
}

// start launches the server if it is stopped and waits until it is live and
// its object layer answers (a bucket listing succeeds).
func (s *minioProcess) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	args := []string{
		"server",
		"--address", s.endpoint(),
		"--certs-dir", filepath.Join(s.dir, "certs"),
		"--quiet",
		filepath.Join(s.dir, "data"),
	}
	env := []string{
		"MINIO_ROOT_USER=" + s.accessKey,
		"MINIO_ROOT_PASSWORD=" + s.secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1", // allow a data directory on the root disk
	}
	httpClient := &http.Client{Timeout: time.Second}
	liveURL := "http://" + s.endpoint() + "/minio/health/live"
	ready := func() error {
		resp, err := httpClient.Get(liveURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", liveURL, resp.Status)
		}
		// Live answers before the object layer is up; listing buckets proves it is.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = s.client.ListBuckets(ctx)
		return err
	}
	p, err := launch(s.bin, args, env, filepath.Join(s.dir, "minio.log"), minioStartTimeout, ready)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

func (s *minioProcess) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.stop()
	s.proc = nil
}

// newBucket creates a bucket with a unique name.
func (s *minioProcess) newBucket() (string, error) {
	name := fmt.Sprintf("test-%d-%s", s.buckets.Add(1), randomHex(4))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return "", fmt.Errorf("creating bucket %s: %v", name, err)
	}
	return name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}
