package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Canonical encoder settings. Changing any of them changes every content
// hash, so they are fixed here rather than configurable. The output is
// byte-identical for a given github.com/klauspost/compress version (pinned in
// go.mod): one goroutine, level "default" (zstd level 3), 8 MiB window,
// frame checksum on.
func encoderOptions() []zstd.EOption {
	return []zstd.EOption{
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(8 << 20),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(false),
		zstd.WithLowerEncoderMem(false),
		zstd.WithConcurrentBlocks(false),
	}
}

// epoch is the modification time of every packed entry.
var epoch = time.Unix(0, 0)

// Pack writes the canonical bundle of the tree at dir to w and returns the
// content hash of the bytes written (§2.2).
//
// The archive holds one entry per regular file, no directory entries (empty
// directories are dropped), sorted bytewise by slash-separated name; every
// header has mode 0644, uid/gid 0, empty user and group names, mtime 0 (Unix
// epoch), no xattrs. Headers are USTAR; a name USTAR cannot hold (non-ASCII,
// or longer than its 155+100 byte split allows) gets exactly one PAX record,
// "path", in a PAX header whose own fields are fixed, so the choice depends on
// the name alone and stays deterministic. Names must pass CheckName, and
// manifest.json must be present: hidden files, symlinks and other non-regular
// files are errors (*RuleError), never silently skipped. Pack does not apply
// Limits; readers do.
func Pack(dir string, w io.Writer) (hash string, err error) {
	names, err := packList(dir)
	if err != nil {
		return "", err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("packing %s: %w", dir, err)
	}
	defer root.Close()

	h := sha256.New()
	enc, err := zstd.NewWriter(io.MultiWriter(w, h), encoderOptions()...)
	if err != nil {
		return "", fmt.Errorf("packing: creating zstd encoder: %w", err)
	}
	defer enc.Close()
	tw := tar.NewWriter(enc)
	for _, name := range names {
		if err := packFile(root, tw, name); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("packing: finishing tar: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("packing: finishing zstd: %w", err)
	}
	return HashPrefix + hex.EncodeToString(h.Sum(nil)), nil
}

// packList returns the sorted names of the regular files under dir and
// rejects everything a reader would reject.
func packList(dir string) ([]string, error) {
	var names []string
	hasManifest := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if err := CheckName(name); err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t.IsRegular():
			names = append(names, name)
			hasManifest = hasManifest || name == ManifestName
			return nil
		case t&fs.ModeSymlink != 0:
			return &RuleError{Rule: RuleEntryType, Name: name, Msg: "symlinks cannot be packed"}
		default:
			return &RuleError{Rule: RuleEntryType, Name: name, Msg: fmt.Sprintf("%s cannot be packed (only regular files)", t.Type())}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("packing %s: %w", dir, err)
	}
	if !hasManifest {
		return nil, fmt.Errorf("packing %s: %w", dir, &RuleError{Rule: RuleManifestMissing, Name: ManifestName, Msg: "no manifest.json at the root of the tree"})
	}
	sort.Strings(names)
	return names, nil
}

// packFile appends one file; a file that changes type or size while being
// packed is an error rather than a silently different archive.
func packFile(root *os.Root, tw *tar.Writer, name string) error {
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return fmt.Errorf("packing %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("packing %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return &RuleError{Rule: RuleEntryType, Name: name, Msg: "file is no longer a regular file"}
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		Size:     fi.Size(),
		ModTime:  epoch,
		Format:   tarFormat(name),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("packing %s: writing header: %w", name, err)
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("packing %s: file changed while packing: %w", name, err)
	}
	return nil
}

// tarFormat picks USTAR when the name fits a USTAR header (ASCII, at most 100
// bytes, or splittable at a slash into a prefix of at most 155 and a suffix
// of at most 100 bytes), and PAX otherwise.
func tarFormat(name string) tar.Format {
	if fitsUSTAR(name) {
		return tar.FormatUSTAR
	}
	return tar.FormatPAX
}

func fitsUSTAR(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return false
		}
	}
	if len(name) <= 100 {
		return true
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && i <= 155 && len(name)-i-1 <= 100 && len(name)-i-1 > 0 && i > 0 {
			return true
		}
	}
	return false
}
