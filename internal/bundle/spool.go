package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrSourceRead marks (wrapped) a failure of the reader given to Spool, so
// callers can tell a sender or blob store that broke off from a local disk
// failure and from a bundle that breaks the rules.
var ErrSourceRead = errors.New("reading bundle source")

// Spooled is a bundle copied to a temporary file, with the content hash and
// size of the bytes received. It must be removed with Remove.
type Spooled struct {
	// Hash is the content hash ("sha256:<hex>") of the spooled bytes.
	Hash string
	// Size is the number of bytes spooled.
	Size int64
	f    *os.File
}

// Spool copies r into a new temporary file in dir (os.TempDir() when "")
// while hashing it, reading at most lim.MaxCompressed bytes: one more is a
// *RuleError with RuleCompressedTooLarge, so an oversized bundle never
// fills the disk. An error of r is returned wrapping ErrSourceRead (and the
// reader's error); any other error is the local disk's. On error the file
// is already removed.
func Spool(r io.Reader, dir string, lim Limits) (*Spooled, error) {
	lim = lim.withDefaults()
	f, err := os.CreateTemp(dir, ".spool-*.tar.zst")
	if err != nil {
		return nil, fmt.Errorf("spooling bundle: %w", err)
	}
	s := &Spooled{f: f}
	h := sha256.New()
	in := &limitedReader{r: r, max: lim.MaxCompressed, rule: RuleCompressedTooLarge,
		msg: fmt.Sprintf("compressed bundle is larger than %d bytes", lim.MaxCompressed)}
	s.Size, err = io.Copy(io.MultiWriter(f, h), in)
	switch {
	case in.err != nil:
		err = in.err
	case in.readErr != nil:
		err = fmt.Errorf("%w: %w", ErrSourceRead, in.readErr)
	case err != nil:
		err = fmt.Errorf("spooling bundle: %w", err)
	}
	if err != nil {
		s.Remove()
		return nil, err
	}
	s.Hash = HashPrefix + hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// Reader reads the spooled bytes from the first one; every call starts
// afresh, so one spooled bundle can be read several times.
func (s *Spooled) Reader() *io.SectionReader {
	return io.NewSectionReader(s.f, 0, s.Size)
}

// Remove closes and deletes the temporary file.
func (s *Spooled) Remove() error {
	s.f.Close()
	return os.Remove(s.f.Name())
}
