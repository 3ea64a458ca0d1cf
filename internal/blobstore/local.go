package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

// Local is a Store in a directory on the local file system, for single-node
// installs. Keys map to paths below the directory.
//
// A Put writes a temporary file next to the target, fsyncs it and hard-links
// it into place. link(2) fails when the target exists, which gives
// create-only semantics without a lock, and readers never see a partially
// written object. Temporary names start with "." so they cannot collide with
// keys.
type Local struct {
	dir string
}

// NewLocal returns a Store rooted at dir, which must be absolute. It does not
// touch the file system; directories are created by the first Put.
func NewLocal(dir string) (*Local, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("local blob store: directory %q is not absolute", dir)
	}
	return &Local{dir: filepath.Clean(dir)}, nil
}

// String returns the store's file:// URL.
func (l *Local) String() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.dir)}).String()
}

func (l *Local) path(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

// Put stores r under key unless an object already exists there.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	target, err := l.path(key)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil {
		return nil // write-once: the existing object wins
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("putting %s: %v", key, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("putting %s: %v", key, err)
	}
	tmpName := tmp.Name()
	// The temporary name is only a staging area: after the link (or any
	// failure) it goes away and the object, if any, lives under target.
	defer os.Remove(tmpName)

	if err := writeAndSync(ctx, tmp, r, size); err != nil {
		tmp.Close()
		return fmt.Errorf("putting %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("putting %s: %v", key, err)
	}
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return fmt.Errorf("putting %s: %v", key, err)
	}
	if err := os.Link(tmpName, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent Put won; its object stays
		}
		return fmt.Errorf("putting %s: %v", key, err)
	}
	// Make the new directory entry durable too.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("putting %s: %v", key, err)
	}
	return nil
}

// writeAndSync copies r (exactly size bytes when size >= 0) into f and
// fsyncs it. Cancelling ctx stops the copy between chunks.
func writeAndSync(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	src := io.Reader(ctxReader{ctx, r})
	var n int64
	var err error
	if size >= 0 {
		n, err = io.CopyN(f, src, size)
		if err == io.EOF {
			return fmt.Errorf("short body: read %d of %d bytes", n, size)
		}
	} else {
		_, err = io.Copy(f, src)
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// ctxReader fails reads once ctx is done, so a cancelled Put stops copying.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get opens the object for reading.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("getting %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("getting %s: %v", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("getting %s: %v", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close() // a key prefix such as "sha256/<hex>" is a directory, not an object
		return nil, fmt.Errorf("getting %s: %w", key, ErrNotFound)
	}
	return f, nil
}

// Stat returns the object's size.
func (l *Local) Stat(ctx context.Context, key string) (int64, error) {
	p, err := l.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("stat %s: %w", key, ErrNotFound)
		}
		return 0, fmt.Errorf("stat %s: %v", key, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return fi.Size(), nil
}

var _ Store = (*Local)(nil)
