package main

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"

	"golang.org/x/term"
)

// hashingReader hashes every byte read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) tee() io.Reader {
	if h.h == nil {
		h.h = sha256.New()
	}
	return h
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashingReader) sum() (string, int64) {
	return "sha256:" + hex.EncodeToString(h.h.Sum(nil)), h.n
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
