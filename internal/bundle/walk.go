package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxDecoderWindow bounds the zstd window (and so the decoder's memory) a
// bundle may ask for. It admits everything up to `zstd --ultra -20`; Pack
// uses 8 MiB.
const maxDecoderWindow = 32 << 20

// Entry describes one regular file of a bundle.
type Entry struct {
	// Name is the slash-separated path inside the bundle.
	Name string `json:"path"`
	// Size is the file size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex SHA-256 of the file contents. It is empty
	// in the Entry handed to a Walk callback (the body has not been read
	// yet) and set in the entries Walk returns.
	SHA256 string `json:"sha256"`
}

// StopWalk may be returned by a Walk callback to end the walk early. Walk then
// returns the entries seen so far and a nil error; the checks that need the
// whole stream (trailing data, manifest presence, later duplicates) are
// skipped.
var StopWalk = errors.New("stop walk")

// Walk streams the bundle in r and enforces every §2.1 rule while doing so:
// limits are counted on the bytes actually read (compressed and
// decompressed), so a compression bomb stops at the limit. fn, when not nil,
// is called for each regular file in archive order with a body limited to that
// file; the body is valid only during the call and fn may leave it unread.
// Directories are validated but not passed to fn. Once the stream ends, Walk
// requires manifest.json at the root and at most 1 MiB of zero padding after
// the tar end-of-archive marker.
//
// zstd frames that ask for a window larger than 32 MiB are rejected as
// corrupt, bounding the decoder's memory.
//
// Walk returns the regular files (with SHA-256) on success. A rule violation
// is a *RuleError; an error of r itself is returned wrapped (not a rule: the
// bundle may be fine); an error returned by fn is returned as is, unless a
// limit tripped while fn was reading, in which case the *RuleError wins.
func Walk(r io.Reader, lim Limits, fn func(e Entry, body io.Reader) error) ([]Entry, error) {
	_, entries, err := walk(r, lim, fn)
	return entries, err
}

// walk is Walk, also returning its state so tests can see how many bytes
// were read.
func walk(r io.Reader, lim Limits, fn func(e Entry, body io.Reader) error) (*walker, []Entry, error) {
	lim = lim.withDefaults()
	w := &walker{lim: lim}
	w.in = &limitedReader{r: r, max: lim.MaxCompressed, rule: RuleCompressedTooLarge,
		msg: fmt.Sprintf("compressed bundle is larger than %d bytes", lim.MaxCompressed)}
	dec, err := zstd.NewReader(w.in,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
		zstd.WithDecoderMaxMemory(maxDecoderWindow),
		zstd.WithDecoderLowmem(true),
	)
	if err != nil {
		return w, nil, w.classify(err)
	}
	defer dec.Close()
	w.out = &limitedReader{r: dec, max: lim.streamBudget(), rule: RuleUncompressedTooLarge,
		msg: fmt.Sprintf("decompressed tar stream is larger than %d bytes", lim.streamBudget())}
	entries, err := w.run(tar.NewReader(w.out), fn)
	return w, entries, err
}

// walker holds the state of one Walk.
type walker struct {
	lim     Limits
	in, out *limitedReader
	kinds   map[string]nameKind
	total   int64 // sum of declared file sizes
	count   int   // tar entries seen
}

type nameKind uint8

const (
	kindFile nameKind = iota + 1
	kindDir
	kindImplicitDir
)

func (w *walker) run(tr *tar.Reader, fn func(Entry, io.Reader) error) ([]Entry, error) {
	w.kinds = make(map[string]nameKind)
	var entries []Entry
	sawManifest := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return nil, w.classify(err)
		}
		name, isDir, err := w.admit(hdr)
		if err != nil {
			return nil, err
		}
		if isDir {
			continue
		}
		if name == ManifestName {
			sawManifest = true
		}
		e, err := w.visit(tr, name, hdr.Size, fn)
		if e.SHA256 != "" {
			entries = append(entries, e)
		}
		if err == StopWalk {
			return entries, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if err := w.checkTrailer(); err != nil {
		return nil, err
	}
	if w.in.n == 0 {
		return nil, &RuleError{Rule: RuleCorrupt, Msg: "empty input"}
	}
	if !sawManifest {
		return nil, &RuleError{Rule: RuleManifestMissing, Name: ManifestName, Msg: "bundle has no manifest.json at its root"}
	}
	return entries, nil
}

// admit checks one header against the count, type, name, duplicate and size
// rules and returns the entry name (without a directory's trailing slash).
func (w *walker) admit(hdr *tar.Header) (name string, isDir bool, err error) {
	w.count++
	if w.count > w.lim.MaxEntries {
		return "", false, &RuleError{Rule: RuleTooManyEntries, Name: hdr.Name,
			Msg: fmt.Sprintf("more than %d entries", w.lim.MaxEntries)}
	}
	name = hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
	case tar.TypeDir:
		isDir = true
		name = strings.TrimSuffix(name, "/")
	default:
		return "", false, &RuleError{Rule: RuleEntryType, Name: hdr.Name,
			Msg: fmt.Sprintf("%s entries are not allowed (only regular files and directories)", typeName(hdr.Typeflag))}
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", false, &RuleError{Rule: RuleEntryType, Name: hdr.Name, Msg: "sparse files are not allowed"}
		}
	}
	if err := CheckName(name); err != nil {
		return "", false, err
	}
	if err := w.claim(name, isDir); err != nil {
		return "", false, err
	}
	if isDir {
		if hdr.Size != 0 {
			return "", false, &RuleError{Rule: RuleCorrupt, Name: hdr.Name, Msg: "directory entry carries data"}
		}
		return name, true, nil
	}
	if hdr.Size > w.lim.MaxFile {
		return "", false, &RuleError{Rule: RuleFileTooLarge, Name: name,
			Msg: fmt.Sprintf("file is %d bytes, larger than %d", hdr.Size, w.lim.MaxFile)}
	}
	w.total += hdr.Size
	if w.total > w.lim.MaxUncompressed {
		return "", false, &RuleError{Rule: RuleUncompressedTooLarge, Name: name,
			Msg: fmt.Sprintf("files add up to more than %d bytes", w.lim.MaxUncompressed)}
	}
	return name, false, nil
}

// claim records name as a file or directory, and its parents as directories,
// rejecting duplicates and file/directory clashes.
func (w *walker) claim(name string, isDir bool) error {
	dup := func(n, msg string) error {
		return &RuleError{Rule: RuleNameDuplicate, Name: n, Msg: msg}
	}
	switch prev := w.kinds[name]; {
	case prev == kindFile:
		return dup(name, "name appears more than once")
	case prev == kindDir && isDir:
		return dup(name, "directory appears more than once")
	case prev != 0 && !isDir:
		return dup(name, "name is both a file and a directory")
	}
	if isDir {
		w.kinds[name] = kindDir
	} else {
		w.kinds[name] = kindFile
	}
	for i := strings.LastIndexByte(name, '/'); i > 0; i = strings.LastIndexByte(name[:i], '/') {
		parent := name[:i]
		switch w.kinds[parent] {
		case kindFile:
			return dup(parent, "name is both a file and a directory")
		case 0:
			w.kinds[parent] = kindImplicitDir
		default:
			return nil // its parents were recorded with it
		}
	}
	return nil
}

// visit hands one file to fn and hashes all of its bytes, read by fn or not.
func (w *walker) visit(tr *tar.Reader, name string, size int64, fn func(Entry, io.Reader) error) (Entry, error) {
	e := Entry{Name: name, Size: size}
	h := sha256.New()
	body := &bodyReader{r: io.TeeReader(tr, h)}
	var fnErr error
	if fn != nil {
		fnErr = fn(e, body)
		if fnErr != nil && fnErr != StopWalk {
			if body.err != nil {
				return e, w.classify(body.err)
			}
			if re := w.limitErr(); re != nil {
				return e, re
			}
			return e, fnErr
		}
	}
	if _, err := io.Copy(h, tr); err != nil {
		return e, w.classify(err)
	}
	e.SHA256 = hex.EncodeToString(h.Sum(nil))
	return e, fnErr
}

// bodyReader remembers the first read error other than io.EOF, so a failure
// of the archive itself is reported as such even when fn wraps it.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// maxTrailer bounds the zero padding accepted after the end-of-archive
// marker (tar writers pad to their blocking factor, 10 KiB by default).
const maxTrailer = 1 << 20

// checkTrailer drains the decompressed stream after the end-of-archive marker
// and accepts only up to maxTrailer zero bytes; draining also makes the zstd
// decoder verify the rest of the compressed input and its checksums.
func (w *walker) checkTrailer() error {
	buf := make([]byte, 32<<10)
	zeros := make([]byte, len(buf))
	var total int64
	for {
		n, err := w.out.Read(buf)
		total += int64(n)
		if !bytes.Equal(buf[:n], zeros[:n]) {
			return &RuleError{Rule: RuleCorrupt, Msg: "data after the tar end-of-archive marker"}
		}
		if total > maxTrailer {
			return &RuleError{Rule: RuleCorrupt, Msg: fmt.Sprintf("more than %d bytes of padding after the tar end-of-archive marker", maxTrailer)}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return w.classify(err)
		}
	}
}

// limitErr returns the limit violation seen by either counting reader.
func (w *walker) limitErr() *RuleError {
	if w.in != nil && w.in.err != nil {
		return w.in.err
	}
	if w.out != nil && w.out.err != nil {
		return w.out.err
	}
	return nil
}

// classify turns a read error into a *RuleError: a tripped limit wins (the
// decoders may hide it behind their own error), then corruption.
//
// A failure of the caller's reader (a dropped connection, say) is not a rule
// violation: it is returned wrapped, so callers can retry instead of
// blaming the bundle.
func (w *walker) classify(err error) error {
	if re := w.limitErr(); re != nil {
		return re
	}
	if w.in != nil && w.in.readErr != nil {
		return fmt.Errorf("reading bundle: %w", w.in.readErr)
	}
	var re *RuleError
	if errors.As(err, &re) {
		return re
	}
	return &RuleError{Rule: RuleCorrupt, Msg: err.Error()}
}

// limitedReader counts bytes and fails, sticky, once more than max were read.
type limitedReader struct {
	r    io.Reader
	n    int64
	max  int64
	rule string
	msg  string
	err  *RuleError
	// readErr is the first error of r other than io.EOF.
	readErr error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if rem := l.max + 1 - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if err != nil && err != io.EOF && l.readErr == nil {
		l.readErr = err
	}
	if l.n > l.max {
		l.err = &RuleError{Rule: l.rule, Msg: l.msg}
		return 0, l.err
	}
	return n, err
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeXGlobalHeader:
		return "global pax header"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("type %q", t)
}

// ReadEntry returns the bytes of the file name, streaming the bundle only
// until it is found (every entry passed on the way is checked as Walk does;
// entries after it are not read). A missing file is an error wrapping
// fs.ErrNotExist.
func ReadEntry(r io.Reader, name string, lim Limits) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	var data []byte
	found := false
	_, err := Walk(r, lim, func(e Entry, body io.Reader) error {
		if e.Name != name {
			return nil
		}
		data = make([]byte, e.Size)
		if _, err := io.ReadFull(body, data); err != nil {
			return err
		}
		found = true
		return StopWalk
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("bundle entry %q: %w", name, fs.ErrNotExist)
	}
	return data, nil
}

// Index validates the whole bundle and lists its regular files.
func Index(r io.Reader, lim Limits) ([]Entry, error) {
	return Walk(r, lim, nil)
}
