package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

func TestFreePortIsBindable(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("FreePort returned %d but binding it failed: %v", port, err)
	}
	l.Close()
}

func TestWaitForPollsUntilSuccess(t *testing.T) {
	calls := 0
	WaitFor(t, 5*time.Second, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("check called %d times, want 3", calls)
	}
}

func TestPollGivesUpAtDeadlineWithLastError(t *testing.T) {
	start := time.Now()
	err := poll(100*time.Millisecond, nil, func() error { return errors.New("still down") })
	if err == nil || !strings.Contains(err.Error(), "still down") {
		t.Fatalf("poll error = %v, want the check's last error", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("poll took %v past a 100ms deadline", elapsed)
	}
}

func TestMissingBinaryFailsWithInstallHintUnlessSkipEnvSet(t *testing.T) {
	notFound := func() (string, error) { return "", errors.New("thing not found") }

	t.Run("fails with the install instruction", func(t *testing.T) {
		t.Setenv("EXTEDGE_SKIP_THING", "")
		rec := &recordingTB{TB: t}
		runTB(rec, func() { requireBinary(rec, notFound, "EXTEDGE_SKIP_THING", "apt-get install thing") })
		if !rec.fatal || !strings.Contains(rec.msg, "apt-get install thing") || !strings.Contains(rec.msg, "EXTEDGE_SKIP_THING") {
			t.Fatalf("fatal=%v msg=%q, want a failure naming the install command and the skip variable", rec.fatal, rec.msg)
		}
	})
	t.Run("skips when EXTEDGE_SKIP_ is set", func(t *testing.T) {
		t.Setenv("EXTEDGE_SKIP_THING", "1")
		rec := &recordingTB{TB: t}
		runTB(rec, func() { requireBinary(rec, notFound, "EXTEDGE_SKIP_THING", "apt-get install thing") })
		if !rec.skipped || rec.fatal || !strings.Contains(rec.msg, "EXTEDGE_SKIP_THING=1") {
			t.Fatalf("skipped=%v fatal=%v msg=%q, want a skip naming the variable", rec.skipped, rec.fatal, rec.msg)
		}
	})
}

func TestRedisStartStopRestart(t *testing.T) {
	r := Redis(t)
	if err := pingRedis(r.Addr()); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	if u := r.URL(); u != "redis://"+r.Addr()+"/0" {
		t.Fatalf("URL() = %q", u)
	}

	r.Stop()
	if err := pingRedis(r.Addr()); err == nil {
		t.Fatal("PING succeeded after Stop")
	}

	addr := r.Addr()
	r.Start()
	if r.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, r.Addr())
	}
	if err := pingRedis(r.Addr()); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestRedisCleanupKillsProcess(t *testing.T) {
	var addr string
	t.Run("inner", func(t *testing.T) {
		addr = Redis(t).Addr()
	})
	if err := pingRedis(addr); err == nil {
		t.Fatalf("redis on %s still answers after its test ended", addr)
	}
}

func TestMinIOStartStopRestartKeepsData(t *testing.T) {
	m := MinIO(t)
	ctx := context.Background()
	c := m.Client()
	if ok, err := c.BucketExists(ctx, m.Bucket); err != nil || !ok {
		t.Fatalf("bucket %s exists=%v err=%v", m.Bucket, ok, err)
	}
	body := []byte("kept across restarts")
	if _, err := c.PutObject(ctx, m.Bucket, "k", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}

	m.Stop()
	if err := httpLive(m.Endpoint); err == nil {
		t.Fatal("MinIO still live after Stop")
	}

	m.Start()
	obj, err := c.GetObject(ctx, m.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after restart read %q, %v; want %q", got, err, body)
	}
}

func TestMinIOURLCarriesEndpointBucketAndKeys(t *testing.T) {
	m := SharedMinIO(t)
	u, err := url.Parse(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "s3" || u.Host != m.Bucket || q.Get("endpoint") != m.Endpoint ||
		q.Get("access_key") != m.AccessKey || q.Get("secret_key") != m.SecretKey ||
		q.Get("tls") != "false" || q.Get("path_style") != "true" {
		t.Fatalf("URL() = %s", m.URL())
	}
}

func TestSharedMinIOGivesEachCallerAFreshBucketOnOneServer(t *testing.T) {
	a := SharedMinIO(t)
	b := SharedMinIO(t)
	if a.Endpoint != b.Endpoint {
		t.Fatalf("shared servers differ: %s vs %s", a.Endpoint, b.Endpoint)
	}
	if a.Bucket == b.Bucket {
		t.Fatalf("both callers got bucket %s", a.Bucket)
	}
	objs := a.Client().ListObjects(context.Background(), b.Bucket, minio.ListObjectsOptions{})
	for o := range objs {
		t.Fatalf("fresh bucket holds %+v", o)
	}
}

func TestSharedMinIORefusesStop(t *testing.T) {
	m := SharedMinIO(t)
	rec := &recordingTB{TB: t}
	m.t = rec
	runTB(rec, m.Stop)
	if !rec.fatal || !strings.Contains(rec.msg, "shared") {
		t.Fatalf("fatal=%v msg=%q, want Stop on a shared server to fail the test", rec.fatal, rec.msg)
	}
	if err := httpLive(m.Endpoint); err != nil {
		t.Fatalf("shared server went down: %v", err)
	}
}

// httpLive reports whether MinIO's liveness endpoint answers 200.
func httpLive(endpoint string) error {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + endpoint + "/minio/health/live")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// recordingTB captures Fatalf/Skipf instead of ending the real test, so the
// failure paths of the harness can be asserted.
type recordingTB struct {
	testing.TB
	fatal, skipped bool
	msg            string
}

type tbExit struct{}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = true
	r.msg = fmt.Sprintf(format, args...)
	panic(tbExit{})
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
	panic(tbExit{})
}

func runTB(_ *recordingTB, f func()) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(tbExit); !ok {
				panic(v)
			}
		}
	}()
	f()
}
