package bundle

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeBenchTree writes about 50 MB of semi-compressible content (words from
// a small vocabulary mixed with random bytes, roughly 2-3x compressible) in
// 50 files of 1 MiB, like a bundle of wasm modules and UI assets.
func writeBenchTree(b *testing.B, dir string) int64 {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"function", "return", "const", "extension", "handler", "ticket", "client", "agreement",
		"invoice", "var", "let", "=>", "{", "}", "(", ")", ";", "\n", "import", "export", "default"}
	var total int64
	files := map[string]bool{"manifest.json": true}
	for i := range 50 {
		files[fmt.Sprintf("ui/assets/chunk-%02d.js", i)] = true
	}
	for name := range files {
		var buf bytes.Buffer
		for buf.Len() < 1<<20 {
			if rng.IntN(4) == 0 {
				var raw [16]byte
				for j := range raw {
					raw[j] = byte(rng.Uint32())
				}
				buf.Write(raw[:])
			} else {
				buf.WriteString(words[rng.IntN(len(words))])
				buf.WriteByte(' ')
			}
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(buf.Len())
	}
	return total
}

// BenchmarkPack50MB measures canonical packing; MB/s is of uncompressed input.
func BenchmarkPack50MB(b *testing.B) {
	dir := b.TempDir()
	total := writeBenchTree(b, dir)
	var out countingWriter
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		out = 0
		if _, err := Pack(dir, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out)/(1<<20), "compressed_MiB")
	b.ReportMetric(float64(total)/float64(out), "ratio")
}

// countingWriter discards what it is given and counts it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// BenchmarkExtract50MB measures validated, fsync'd extraction; MB/s is of
// uncompressed output.
func BenchmarkExtract50MB(b *testing.B) {
	src := b.TempDir()
	total := writeBenchTree(b, src)
	var packed bytes.Buffer
	if _, err := Pack(src, &packed); err != nil {
		b.Fatal(err)
	}
	base := b.TempDir()
	b.SetBytes(total)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		dest := filepath.Join(base, fmt.Sprint(i))
		i++
		if _, err := Extract(bytes.NewReader(packed.Bytes()), dest, DefaultLimits(), nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dest)
		b.StartTimer()
	}
}

// BenchmarkWalk50MB measures validation alone (decompress, check, hash).
func BenchmarkWalk50MB(b *testing.B) {
	src := b.TempDir()
	total := writeBenchTree(b, src)
	var packed bytes.Buffer
	if _, err := Pack(src, &packed); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Walk(bytes.NewReader(packed.Bytes()), DefaultLimits(), nil); err != nil {
			b.Fatal(err)
		}
	}
}
