// Command gen writes the malicious bundle corpus used by the bundle tests:
// testdata/malicious/*.tar.zst and the fuzz seeds under testdata/fuzz.
// Run it from the repository root:
//
//	go run ./internal/bundle/testdata/gen
//
// Headers are built byte by byte rather than with archive/tar, because
// archive/tar refuses to write most of these archives. The expected rule for
// each file is in the table of malicious_test.go.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

const (
	outDir  = "internal/bundle/testdata/malicious"
	fuzzDir = "internal/bundle/testdata/fuzz"
	// Corpus files up to this size also seed the fuzzers.
	maxSeed = 16 << 10
)

var manifest = []byte(`{"schema":2,"name":"evil","version":"1.0.0","publisher":"mallory"}` + "\n")

// tw writes raw tar blocks.
type tw struct{ w io.Writer }

func (t tw) write(b []byte) {
	if _, err := t.w.Write(b); err != nil {
		log.Fatal(err)
	}
}

func octal(b []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	s = strings.Repeat("0", len(b)-1-len(s)) + s
	copy(b, s)
}

// header writes one USTAR header block; name goes into the 100-byte name
// field verbatim (it may hold any bytes).
func (t tw) header(name string, typ byte, size int64, link string) {
	var b [512]byte
	copy(b[0:100], name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	octal(b[124:136], size)
	octal(b[136:148], 0)
	b[156] = typ
	copy(b[157:257], link)
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	if typ == '3' || typ == '4' {
		octal(b[329:337], 1)
		octal(b[337:345], 3)
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	s := strconv.FormatInt(int64(sum), 8)
	copy(b[148:156], strings.Repeat("0", 6-len(s))+s+"\x00 ")
	t.write(b[:])
}

// gnuSparse writes an old-GNU sparse entry with one 512-byte data region and
// a huge logical size.
func (t tw) gnuSparse(name string, realSize int64) {
	var b [512]byte
	copy(b[0:100], name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	octal(b[124:136], 512)
	octal(b[136:148], 0)
	b[156] = 'S'
	copy(b[257:265], "ustar  \x00")
	octal(b[386:398], 0)   // sparse[0].offset
	octal(b[398:410], 512) // sparse[0].numbytes
	b[482] = 0             // not extended
	octal(b[483:495], realSize)
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	s := strconv.FormatInt(int64(sum), 8)
	copy(b[148:156], strings.Repeat("0", 6-len(s))+s+"\x00 ")
	t.write(b[:])
	t.write(make([]byte, 512))
}

func (t tw) pad(size int64) {
	if r := size % 512; r != 0 {
		t.write(make([]byte, 512-r))
	}
}

// file writes a regular file entry with the given body.
func (t tw) file(name string, body []byte) {
	t.header(name, '0', int64(len(body)), "")
	t.write(body)
	t.pad(int64(len(body)))
}

// zeros writes a regular file entry of n zero bytes without holding them.
func (t tw) zeros(name string, n int64) {
	t.header(name, '0', n, "")
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		t.write(buf[:k])
		left -= k
	}
	t.pad(n)
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for {
		s := strconv.Itoa(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// pax writes a PAX extended header applying to the next entry.
func (t tw) pax(records ...string) {
	data := strings.Join(records, "")
	t.header("PaxHeaders.0/x", 'x', int64(len(data)), "")
	t.write([]byte(data))
	t.pad(int64(len(data)))
}

func (t tw) end() { t.write(make([]byte, 1024)) }

// withManifest starts an archive with a valid manifest, then runs body.
func withManifest(body func(t tw)) func(t tw) {
	return func(t tw) {
		t.file("manifest.json", manifest)
		body(t)
		t.end()
	}
}

func compress(build func(t tw)) []byte {
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		log.Fatal(err)
	}
	build(tw{enc})
	if err := enc.Close(); err != nil {
		log.Fatal(err)
	}
	return out.Bytes()
}

func main() {
	cases := map[string]func(t tw){
		"symlink": withManifest(func(t tw) { t.header("ui/passwd", '2', 0, "/etc/passwd") }),
		"hardlink": withManifest(func(t tw) {
			t.header("ui/shadow", '1', 0, "../../etc/shadow")
		}),
		"char_device":  withManifest(func(t tw) { t.header("ui/null", '3', 0, "") }),
		"block_device": withManifest(func(t tw) { t.header("ui/sda", '4', 0, "") }),
		"fifo":         withManifest(func(t tw) { t.header("ui/pipe", '6', 0, "") }),
		"gnu_sparse":   withManifest(func(t tw) { t.gnuSparse("ui/sparse", 1<<30) }),
		"pax_sparse": withManifest(func(t tw) {
			t.pax(paxRecord("GNU.sparse.major", "1"), paxRecord("GNU.sparse.minor", "0"),
				paxRecord("GNU.sparse.name", "ui/sparse"), paxRecord("GNU.sparse.realsize", "1073741824"))
			sparseMap := make([]byte, 512)
			copy(sparseMap, "1\n0\n1\n") // one data region: offset 0, length 1
			t.file("ui/GNUSparseFile.0/sparse", append(sparseMap, 'x'))
		}),
		"global_pax_header": withManifest(func(t tw) {
			t.header("pax_global_header", 'g', 0, "")
		}),
		"absolute_path":    withManifest(func(t tw) { t.file("/tmp/extedge-evil", []byte("x")) }),
		"dotdot_traversal": withManifest(func(t tw) { t.file("../extedge-evil", []byte("x")) }),
		"inner_dotdot":     withManifest(func(t tw) { t.file("a/../../extedge-evil", []byte("x")) }),
		"dot_segment":      withManifest(func(t tw) { t.file("./a", []byte("x")) }),
		"empty_segment":    withManifest(func(t tw) { t.file("a//b", []byte("x")) }),
		"backslash":        withManifest(func(t tw) { t.file(`..\extedge-evil`, []byte("x")) }),
		"nul_in_pax_path": withManifest(func(t tw) {
			t.pax(paxRecord("path", "ui/a\x00/../../../extedge-evil"))
			t.file("ui/a", []byte("x"))
		}),
		"control_char":   withManifest(func(t tw) { t.file("ui/a\x01b", []byte("x")) }),
		"escape_char":    withManifest(func(t tw) { t.file("ui/\x1b[31mred", []byte("x")) }),
		"invalid_utf8":   withManifest(func(t tw) { t.file("ui/\xff\xfe.js", []byte("x")) }),
		"overlong_slash": withManifest(func(t tw) { t.file("..\xc0\xafextedge-evil", []byte("x")) }),
		"overlong_dot":   withManifest(func(t tw) { t.file("\xc0\xae\xc0\xae/extedge-evil", []byte("x")) }),
		"bidi_override":  withManifest(func(t tw) { t.file("ui/gpj.\u202eexe", []byte("x")) }),
		"percent_encoded": withManifest(func(t tw) {
			t.file("%2e%2e/%2e%2e/extedge-evil", []byte("x"))
			t.file("ui/%2F..%2Fx", []byte("y"))
		}),
		"long_name_257": withManifest(func(t tw) {
			name := "ui/" + strings.Repeat("a", 257-3)
			t.pax(paxRecord("path", name))
			t.file("ui/placeholder", []byte("x"))
		}),
		"duplicate_file": withManifest(func(t tw) { t.file("manifest.json", []byte("{}")) }),
		"file_and_dir": withManifest(func(t tw) {
			t.file("ui", []byte("x"))
			t.header("ui/", '5', 0, "")
		}),
		"file_as_parent": withManifest(func(t tw) {
			t.file("ui", []byte("x"))
			t.file("ui/index.html", []byte("<p>"))
		}),
		"dir_then_file": withManifest(func(t tw) {
			t.header("dist/", '5', 0, "")
			t.file("dist", []byte("x"))
		}),
		"hidden_git": withManifest(func(t tw) { t.file(".git/config", []byte("[core]")) }),
		"hidden_env": withManifest(func(t tw) { t.file("ui/.env", []byte("SECRET=1")) }),
		"bomb_zeros": withManifest(func(t tw) {
			// 32 files of 64 MiB (each within MaxFile): 2 GiB of zeros.
			for i := range 32 {
				t.zeros(fmt.Sprintf("dist/zero%02d.bin", i), 64<<20)
			}
		}),
		"bomb_pax_chain": withManifest(func(t tw) {
			// 1 GiB of chained PAX headers that never reach an entry:
			// only the decompressed-stream budget stops this one.
			rec := paxRecord("comment", strings.Repeat("A", 1<<20-64))
			for range 1024 {
				t.pax(rec)
			}
			t.file("ui/after", []byte("x"))
		}),
		"file_too_large": withManifest(func(t tw) { t.zeros("dist/huge.wasm", 64<<20+1) }),
		"too_many_entries": withManifest(func(t tw) {
			for i := range 10000 {
				t.file(fmt.Sprintf("ui/f%05d", i), nil)
			}
		}),
		"no_manifest": func(t tw) {
			t.file("ui/index.html", []byte("<p>"))
			t.end()
		},
		"manifest_in_subdir": func(t tw) {
			t.file("ui/manifest.json", manifest)
			t.end()
		},
		"manifest_is_dir": func(t tw) {
			t.header("manifest.json/", '5', 0, "")
			t.file("manifest.json/x", manifest)
			t.end()
		},
		"corrupt_tar_checksum": func(t tw) {
			var b bytes.Buffer
			tw{&b}.file("manifest.json", manifest)
			raw := b.Bytes()
			raw[150] ^= 0x01 // break the header checksum
			t.write(raw)
			t.end()
		},
		"trailing_zeros": withManifest(func(t tw) {
			// 256 MiB of zeros after the end marker: hidden bomb padding.
			buf := make([]byte, 1<<20)
			for range 256 {
				t.write(buf)
			}
		}),
		"trailing_data": withManifest(func(t tw) {
			t.end()
			t.write([]byte("#!/bin/sh\nhidden payload after the end marker\n"))
		}),
	}

	if err := os.MkdirAll(outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	files := map[string][]byte{}
	for name, build := range cases {
		files[name] = compress(build)
	}
	good := files["percent_encoded"]
	files["truncated_zstd"] = good[:len(good)-7]
	files["not_zstd"] = []byte("PK\x03\x04 this is a zip file, not a zstd stream\n")
	flipped := bytes.Clone(files["hidden_env"])
	flipped[len(flipped)/2] ^= 0xff
	files["corrupt_zstd_block"] = flipped

	for name, data := range files {
		p := filepath.Join(outDir, name+".tar.zst")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-24s %8d bytes\n", name, len(data))
		if len(data) <= maxSeed {
			for _, target := range []string{"FuzzWalk", "FuzzExtract"} {
				dir := filepath.Join(fuzzDir, target)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					log.Fatal(err)
				}
				seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(seed), 0o644); err != nil {
					log.Fatal(err)
				}
			}
		}
	}
}
