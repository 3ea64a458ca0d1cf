package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStoreFunc returns an empty store for one conformance case.
type newStoreFunc func(t *testing.T) Store

func TestLocalConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		s, err := NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestS3Conformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		m := testenv.SharedMinIO(t)
		s, err := Open(m.URL())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

const testHash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// runConformance is the behaviour every Store must show, run against each
// backend.
func runConformance(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()

	t.Run("put then get returns the bytes", func(t *testing.T) {
		s := newStore(t)
		key := BundleKey(testHash)
		want := []byte("bundle bytes")
		mustPut(t, s, key, want, int64(len(want)))
		if got := mustGet(t, s, key); !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})

	t.Run("put of an existing key succeeds and keeps the first object", func(t *testing.T) {
		s := newStore(t)
		key := ManifestKey(testHash)
		mustPut(t, s, key, []byte("first"), 5)
		if err := s.Put(ctx, key, strings.NewReader("second, longer"), 14); err != nil {
			t.Fatalf("second put = %v, want nil (create-only is success)", err)
		}
		if got := mustGet(t, s, key); string(got) != "first" {
			t.Fatalf("object = %q, want the first write", got)
		}
		// Unknown size takes another code path; same rule.
		if err := s.Put(ctx, key, strings.NewReader("third"), -1); err != nil {
			t.Fatalf("put with unknown size = %v, want nil", err)
		}
		if got := mustGet(t, s, key); string(got) != "first" {
			t.Fatalf("object = %q after unknown-size put, want the first write", got)
		}
	})

	t.Run("get of a missing key is ErrNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Get(ctx, SignatureKey(testHash))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})

	t.Run("stat returns the size, ErrNotFound when missing", func(t *testing.T) {
		s := newStore(t)
		key := SignatureKey(testHash)
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat before put = %v, want ErrNotFound", err)
		}
		mustPut(t, s, key, []byte("sig-123"), 7)
		size, err := s.Stat(ctx, key)
		if err != nil || size != 7 {
			t.Fatalf("Stat = %d, %v; want 7", size, err)
		}
	})

	t.Run("a key prefix is not an object", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, BundleKey(testHash), []byte("x"), 1)
		prefix := strings.TrimSuffix(BundleKey(testHash), "/bundle.tar.zst")
		if _, err := s.Get(ctx, prefix); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%s) = %v, want ErrNotFound", prefix, err)
		}
		if _, err := s.Stat(ctx, prefix); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat(%s) = %v, want ErrNotFound", prefix, err)
		}
	})

	t.Run("bad keys are rejected by every operation", func(t *testing.T) {
		s := newStore(t)
		for _, key := range []string{"", "../escape", "a/../b", "/abs/key", "a//b", "a/", "Upper/case", "a/.hidden", "sp ace", "a\\b", BundleKey("sha256:short")} {
			if err := s.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
			}
		}
	})

	t.Run("a body shorter than size is an error and leaves no object", func(t *testing.T) {
		s := newStore(t)
		key := BundleKey(testHash)
		err := s.Put(ctx, key, strings.NewReader("only 9 b"), 100)
		if err == nil {
			t.Fatal("Put with a short body succeeded")
		}
		if errors.Is(err, ErrUnavailable) {
			t.Fatalf("Put with a short body = %v; a body error must not read as storage unavailable", err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat after failed put = %v, want ErrNotFound", err)
		}
	})

	t.Run("a failing body is an error and leaves no object", func(t *testing.T) {
		s := newStore(t)
		key := BundleKey(testHash)
		boom := errors.New("boom")
		body := io.MultiReader(strings.NewReader("partial"), errReader{boom})
		for _, size := range []int64{-1, 100} {
			if err := s.Put(ctx, key, body, size); !errors.Is(err, boom) {
				t.Fatalf("Put(size %d) = %v, want the body's error", size, err)
			}
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat after failed put = %v, want ErrNotFound", err)
		}
	})

	t.Run("an empty object round-trips", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "empty", nil, 0)
		if got := mustGet(t, s, "empty"); len(got) != 0 {
			t.Fatalf("got %d bytes", len(got))
		}
	})

	t.Run("20 MB body of unknown size streams in and out", func(t *testing.T) {
		s := newStore(t)
		const size = 20 << 20
		key := BundleKey(testHash)
		src := io.LimitReader(rand.Reader, size)
		h := sha256.New()
		// Only Reader is visible, so the store cannot learn the size.
		if err := s.Put(ctx, key, onlyReader{io.TeeReader(src, h)}, -1); err != nil {
			t.Fatalf("Put: %v", err)
		}
		want := h.Sum(nil)
		if n, err := s.Stat(ctx, key); err != nil || n != size {
			t.Fatalf("Stat = %d, %v; want %d", n, err, size)
		}
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer rc.Close()
		h.Reset()
		n, err := io.Copy(h, rc)
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
			t.Fatalf("read back %d bytes, err %v, digest match %v", n, err, bytes.Equal(h.Sum(nil), want))
		}
	})

	t.Run("concurrent puts of one key all succeed and one content wins", func(t *testing.T) {
		s := newStore(t)
		key := BundleKey(testHash)
		const writers = 8
		bodies := make([][]byte, writers)
		for i := range bodies {
			bodies[i] = bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i)
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				size := int64(len(bodies[i]))
				if i%2 == 1 {
					size = -1
				}
				errs[i] = s.Put(ctx, key, bytes.NewReader(bodies[i]), size)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
		got := mustGet(t, s, key)
		for _, b := range bodies {
			if bytes.Equal(got, b) {
				return
			}
		}
		t.Fatalf("object (%d bytes) matches no writer's body whole", len(got))
	})
}

func mustPut(t *testing.T, s Store, key string, body []byte, size int64) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(body), size); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func mustGet(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// onlyReader hides every interface but io.Reader (no Seeker, no Len).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestKeysFollowTheLayout(t *testing.T) {
	hexPart := strings.TrimPrefix(testHash, "sha256:")
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"bundle key", BundleKey(testHash), "sha256/" + hexPart + "/bundle.tar.zst"},
		{"manifest key", ManifestKey(testHash), "sha256/" + hexPart + "/manifest.json"},
		{"signature key", SignatureKey(testHash), "sha256/" + hexPart + "/SIGNATURE"},
		{"missing algorithm prefix gives no key", BundleKey(hexPart), ""},
		{"upper-case hex gives no key", BundleKey(strings.ToUpper(testHash)), ""},
		{"short hash gives no key", BundleKey("sha256:abcd"), ""},
		{"path traversal in hash gives no key", BundleKey("sha256:../" + hexPart[3:]), ""},
		{"other algorithm gives no key", BundleKey("sha512:" + hexPart), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	for _, k := range []string{BundleKey(testHash), ManifestKey(testHash), SignatureKey(testHash)} {
		if err := validateKey(k); err != nil {
			t.Errorf("layout key %s fails validation: %v", k, err)
		}
	}
}

func TestLocalPutLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := NewLocal(dir)
	ctx := context.Background()
	key := BundleKey(testHash)
	mustPut(t, s, key, []byte("a"), 1)
	_ = s.Put(ctx, key, strings.NewReader("b"), 1)                    // exists
	_ = s.Put(ctx, ManifestKey(testHash), strings.NewReader("x"), 10) // short body
	entries, err := readDirNames(dir + "/sha256/" + strings.TrimPrefix(testHash, "sha256:"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(entries) != "[bundle.tar.zst]" {
		t.Fatalf("directory holds %v, want only the object", entries)
	}
}

func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}
