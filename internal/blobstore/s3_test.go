package blobstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/testenv"
	"github.com/minio/minio-go/v7"
)

// unavailableWithin is how fast a stopped store must be reported.
const unavailableWithin = 5 * time.Second

func TestS3StoppedServerFailsFastThenRecovers(t *testing.T) {
	m := testenv.MinIO(t)
	s, err := Open(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := BundleKey(testHash)
	mustPut(t, s, key, []byte("before"), 6)

	m.Stop()

	ops := []struct {
		name string
		call func() error
	}{
		{"put", func() error { return s.Put(ctx, ManifestKey(testHash), strings.NewReader("x"), 1) }},
		{"put unknown size", func() error { return s.Put(ctx, ManifestKey(testHash), strings.NewReader("x"), -1) }},
		{"get", func() error {
			rc, err := s.Get(ctx, key)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"stat", func() error { _, err := s.Stat(ctx, key); return err }},
	}
	for _, op := range ops {
		t.Run(op.name+" reports ErrUnavailable quickly", func(t *testing.T) {
			start := time.Now()
			err := op.call()
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error = %v, want ErrUnavailable", err)
			}
			if errors.Is(err, ErrNotFound) {
				t.Fatalf("error = %v also matches ErrNotFound", err)
			}
			if elapsed > unavailableWithin {
				t.Fatalf("took %v, want under %v", elapsed, unavailableWithin)
			}
			t.Logf("failed in %v: %v", elapsed, err)
		})
	}

	m.Start()
	if got := mustGet(t, s, key); string(got) != "before" {
		t.Fatalf("after restart got %q", got)
	}
}

func TestS3PutSendsIfNoneMatch(t *testing.T) {
	// The object is changed behind the store's back with a plain PUT; a later
	// Put through the store must not restore the original: the server
	// refuses it (412), which the store reports as success.
	m := testenv.SharedMinIO(t)
	s, err := Open(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "probe"
	if _, err := m.Client().PutObject(ctx, m.Bucket, key, strings.NewReader("external"), 8, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{7, -1} {
		if err := s.Put(ctx, key, strings.NewReader("ours!!!"), size); err != nil {
			t.Fatalf("Put(size %d) over an existing object = %v, want nil", size, err)
		}
	}
	if got := mustGet(t, s, key); string(got) != "external" {
		t.Fatalf("object = %q, want it untouched", got)
	}
}

func TestS3MultipartPutIsCreateOnly(t *testing.T) {
	// Bodies of unknown size above one part go through a multipart upload;
	// the condition must hold there too, and failed uploads leave no parts.
	m := testenv.SharedMinIO(t)
	s, err := Open(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := BundleKey(testHash)
	big := func(b byte) io.Reader { return onlyReader{io.LimitReader(repeatReader(b), s3PartSize+1)} }
	if err := s.Put(ctx, key, big('a'), -1); err != nil {
		t.Fatalf("first multipart put: %v", err)
	}
	if err := s.Put(ctx, key, big('b'), -1); err != nil {
		t.Fatalf("second multipart put = %v, want nil", err)
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(rc, first); err != nil || first[0] != 'a' {
		t.Fatalf("object starts with %q, %v; want the first write", first, err)
	}
	for u := range m.Client().ListIncompleteUploads(ctx, m.Bucket, "", true) {
		t.Fatalf("upload left behind: %+v", u)
	}
}

func TestS3MissingBucketIsNotNotFound(t *testing.T) {
	m := testenv.SharedMinIO(t)
	s, err := NewS3(S3Config{Endpoint: "http://" + m.Endpoint, Bucket: "no-such-bucket-here", AccessKey: m.AccessKey, SecretKey: m.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(context.Background(), "k")
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Stat in a missing bucket = %v, want a configuration error", err)
	}
	if !strings.Contains(err.Error(), "no-such-bucket-here") {
		t.Fatalf("error %q does not name the store", err)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestS3MultipartPutLosingTheRaceAtCompleteIsSuccess(t *testing.T) {
	// Two writers both start while the key is absent; the condition checked
	// when the slower multipart upload completes must keep the first object.
	m := testenv.SharedMinIO(t)
	s, err := Open(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := BundleKey(testHash)
	slow := &pausingReader{
		first:   io.LimitReader(repeatReader('a'), 2*s3PartSize),
		paused:  make(chan struct{}),
		release: make(chan struct{}),
		rest:    strings.NewReader("tail"),
	}
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, key, onlyReader{slow}, -1) }()

	select {
	case <-slow.paused: // the upload is initiated and its first part sent
	case err := <-done:
		t.Fatalf("slow Put returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("slow Put never reached its second part")
	}
	if err := s.Put(ctx, key, strings.NewReader("winner"), 6); err != nil {
		t.Fatalf("fast Put: %v", err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatalf("slow Put = %v, want nil (412 at completion is success)", err)
	}
	if got := mustGet(t, s, key); string(got) != "winner" {
		t.Fatalf("object = %.20q…, want the fast writer's", got)
	}
	for u := range m.Client().ListIncompleteUploads(ctx, m.Bucket, "", true) {
		t.Fatalf("upload left behind: %+v", u)
	}
}

// pausingReader serves first, then signals paused and blocks until release,
// then serves rest.
type pausingReader struct {
	first, rest     io.Reader
	paused, release chan struct{}
	firstDone       bool
}

func (p *pausingReader) Read(b []byte) (int, error) {
	if !p.firstDone {
		n, err := p.first.Read(b)
		if err == io.EOF {
			p.firstDone = true
			close(p.paused)
			<-p.release
			return p.rest.Read(b)
		}
		return n, err
	}
	return p.rest.Read(b)
}
