package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/testenv"
)

// hookStore calls before ahead of each Put.
type hookStore struct {
	blobstore.Store
	before func(key string)
}

func (h *hookStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if h.before != nil {
		h.before(key)
	}
	return h.Store.Put(ctx, key, r, size)
}

// TestPublishSurvivesPostgresOutage stops Postgres while the bundle is
// being written (after every check, before the rows): the publish fails
// with database_unavailable, leaves no rows, and succeeds when retried
// after Postgres is back.
func TestPublishSurvivesPostgresOutage(t *testing.T) {
	pg := testenv.PrivatePostgres(t)
	local, err := blobstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	hook := &hookStore{Store: local}
	e := newEnv(t, envOptions{pg: pg, blobs: hook})
	b := packBundle(t, e.signer, manifestFor("com.acme.fault", "1.0.0"), nil)
	expect(t, e.do("GET", "/v1/extensions", e.admin, nil, nil), 200, "") // token cached

	hook.before = func(key string) {
		if strings.HasSuffix(key, "bundle.tar.zst") {
			once.Do(pg.Stop)
		}
	}
	expect(t, e.publish(e.admin, b), 503, "database_unavailable")
	expect(t, e.do("GET", "/readyz", "", nil, nil), 503, "database_unavailable")

	hook.before = nil
	pg.Start()
	testenv.WaitFor(t, 30*time.Second, func() error { return e.db.Ping(context.Background()) })
	bundles, versions, err := e.db.CountPublishRows(context.Background(), b.hash)
	if err != nil || bundles+versions != 0 {
		t.Fatalf("dangling rows after the failed publish: %d bundles, %d versions (%v)", bundles, versions, err)
	}
	expect(t, e.publish(e.admin, b), 201, "")
	expect(t, e.do("GET", "/readyz", "", nil, nil), 200, "")
}

// TestPublishToMinIO publishes into a real S3 store and fails cleanly with
// storage_unavailable while it is down.
func TestPublishToMinIO(t *testing.T) {
	m := testenv.MinIO(t)
	blobs, err := blobstore.Open(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{blobs: blobs})
	b1 := packBundle(t, e.signer, manifestFor("com.acme.s3", "1.0.0"), nil)
	expect(t, e.publish(e.admin, b1), 201, "")
	for _, key := range []string{blobstore.BundleKey(b1.hash), blobstore.ManifestKey(b1.hash), blobstore.SignatureKey(b1.hash)} {
		if _, err := blobs.Stat(context.Background(), key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	expect(t, e.publish(e.admin, b1), 200, "") // create-only write of existing blobs is fine

	m.Stop()
	b2 := packBundle(t, e.signer, manifestFor("com.acme.s3", "1.1.0"), nil)
	start := time.Now()
	expect(t, e.publish(e.admin, b2), 503, "storage_unavailable")
	t.Logf("storage_unavailable after %v", time.Since(start))
	bundles, versions, _ := e.db.CountPublishRows(context.Background(), b2.hash)
	if bundles+versions != 0 {
		t.Fatal("rows written although the blobs were not")
	}
	m.Start()
	expect(t, e.publish(e.admin, b2), 201, "")
}

// TestDatabaseDown: every API answers database_unavailable while Postgres
// is down, and recovers without a restart.
func TestDatabaseDown(t *testing.T) {
	pg := testenv.PrivatePostgres(t)
	e := newEnv(t, envOptions{pg: pg})
	e.mustPublish("com.acme.crm", "1.0.0")
	e.install("tenant-a", "com.acme.crm", "1.0.0")
	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 200, "")

	// A change-feed follower keeps following across the outage.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan registryapi.Change, 10)
	go e.client(e.service).FollowChanges(ctx, func(c registryapi.Change) { events <- c }, nil)
	// Wait until the stream is established: it delivers this change.
	testenv.WaitFor(t, 10*time.Second, func() error {
		expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.crm/enable", e.tenantA, nil, nil), 200, "")
		select {
		case <-events:
			return nil
		case <-time.After(300 * time.Millisecond):
			return fmt.Errorf("no event yet")
		}
	})

	pg.Stop()
	expect(t, e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil), 503, "database_unavailable")
	expect(t, e.do("GET", "/v1/extensions", e.admin, nil, nil), 503, "database_unavailable")
	expect(t, e.do("GET", "/healthz", "", nil, nil), 200, "")
	pg.Start()
	testenv.WaitFor(t, 30*time.Second, func() error {
		if r := e.do("GET", "/v1/resolve/tenant-a/com.acme.crm", e.service, nil, nil); r.status != 200 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	expect(t, e.do("POST", "/v1/tenants/tenant-a/installs/com.acme.crm/disable", e.tenantA, nil, nil), 200, "")
	want, err := e.db.LatestChangeID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.ID == want {
				return
			}
		case <-deadline:
			t.Fatal("the change feed did not resume after the outage")
		}
	}
}

// TestPublishInterruptedUpload: a client that disconnects half-way through
// the body leaves no rows, no blobs and no temporary file; a retry works.
func TestPublishInterruptedUpload(t *testing.T) {
	tmp := t.TempDir()
	e := newEnv(t, envOptions{tempDir: tmp})
	b := packBundle(t, e.signer, manifestFor("com.acme.cut", "1.0.0"), map[string]string{"ui/blob.bin": string(randomBytes(512 << 10))})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
		e.admin, registryapi.SignatureHeader, base64.StdEncoding.EncodeToString(b.sig), len(b.data))
	conn.Write(b.data[:len(b.data)/2])
	conn.Close()

	testenv.WaitFor(t, 10*time.Second, func() error {
		entries, _ := os.ReadDir(tmp)
		if len(entries) != 0 {
			return fmt.Errorf("%d temporary files left", len(entries))
		}
		return nil
	})
	bundles, versions, _ := e.db.CountPublishRows(context.Background(), b.hash)
	if bundles+versions != 0 {
		t.Fatal("rows left by an interrupted upload")
	}
	if _, err := e.blobs.Stat(context.Background(), blobstore.BundleKey(b.hash)); err == nil {
		t.Fatal("blob written by an interrupted upload")
	}
	expect(t, e.publish(e.admin, b), 201, "")
}
