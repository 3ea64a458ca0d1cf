package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// Extract validates the bundle in r (as Walk does) and writes the files
// accepted by keep (nil keeps all) under dest, which must not exist yet.
//
// Files are written into a fresh temporary directory next to dest (same
// parent, so the final rename is atomic), through an os.Root so no path can
// leave it and no symlink is followed out of it, each created with O_EXCL,
// mode 0644 (directories 0755, regardless of umask); once the whole bundle
// has been validated every file and directory is fsync'd, the tree is
// renamed to dest and the parent directory fsync'd. On any failure the
// temporary directory is removed and dest is not created. Empty directories
// are not materialized. Two names differing only in case collide on a
// case-insensitive filesystem: the O_EXCL create fails and nothing is kept.
//
// The check that dest does not exist and the final rename are not one atomic
// step: a directory created at dest in between by someone else is replaced if
// it is empty.
//
// Extract returns all regular files of the bundle, kept or not, with SHA-256.
func Extract(r io.Reader, dest string, lim Limits, keep func(name string) bool) (entries []Entry, err error) {
	dest = filepath.Clean(dest)
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("extracting bundle: %s: %w", dest, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	parent := filepath.Dir(dest)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	defer root.Close()

	x := &extractor{root: root, dirs: map[string]bool{".": true}}
	entries, err = Walk(r, lim, func(e Entry, body io.Reader) error {
		if keep != nil && !keep(e.Name) {
			return nil
		}
		return x.writeFile(e.Name, body)
	})
	if err != nil {
		return nil, err
	}
	if err := x.syncAll(); err != nil {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	if _, err := os.Lstat(dest); err == nil {
		return nil, fmt.Errorf("extracting bundle: %s: %w", dest, fs.ErrExist)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("extracting bundle: %w", err)
	}
	if err := syncDir(parent); err != nil {
		// Keep the promise that a failed extraction leaves nothing behind.
		os.RemoveAll(dest)
		return nil, fmt.Errorf("extracting bundle: syncing %s: %w", parent, err)
	}
	return entries, nil
}

// extractor writes files under one os.Root.
type extractor struct {
	root  *os.Root
	dirs  map[string]bool // slash-separated directories created so far
	files []string        // files written, fsync'd once the bundle is valid
}

func (x *extractor) writeFile(name string, body io.Reader) error {
	if err := x.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	f, err := x.root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	_, err = io.Copy(f, body)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	x.files = append(x.files, name)
	return nil
}

func (x *extractor) mkdirAll(dir string) error {
	if x.dirs[dir] {
		return nil
	}
	if err := x.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	p := filepath.FromSlash(dir)
	if err := x.root.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("extracting directory %s: %w", dir, err)
	}
	if err := x.root.Chmod(p, 0o755); err != nil {
		return fmt.Errorf("extracting directory %s: %w", dir, err)
	}
	x.dirs[dir] = true
	return nil
}

// syncAll makes every written file and directory durable. It runs only once
// the whole bundle has been validated, so a rejected bundle costs no fsync.
func (x *extractor) syncAll() error {
	names := x.files
	for dir := range x.dirs {
		names = append(names, dir)
	}
	for _, name := range names {
		f, err := x.root.Open(filepath.FromSlash(name))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("syncing %s: %w", name, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
