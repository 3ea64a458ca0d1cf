// Package guests compiles the WAT test guests in runnerd/testdata for the
// runner's tests and benchmarks. A file that starts with "(module" is used
// as is; any other file is a module body that gets the standard prelude
// (memory, a bump alloc, $respond) and has its import lines hoisted.
package guests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// Prelude is added to every module body.
const Prelude = `
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $ok (i32.ne
        (memory.grow (i32.sub (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1)) (memory.size)))
        (i32.const -1)))
      unreachable)
    (local.get $p))
  (func $respond (param $out i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (local.get $out) (local.get $ptr))
    (i32.store offset=4 (local.get $out) (local.get $len))
    (i32.const 0))
`

// Dir is the testdata directory of runnerd.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

var dataRE = regexp.MustCompile(`\(data \(i32\.const (\d+)\) "((?:[^"\\]|\\.)*)"\)`)

// Source returns the full WAT text of a guest with vars ({{NAME}}) filled
// in and {{LEN<addr>}} replaced by the byte length of the data segment at
// that address.
func Source(name string, vars map[string]string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Dir(), name))
	if err != nil {
		return "", err
	}
	src := string(b)
	for k, v := range vars {
		src = strings.ReplaceAll(src, "{{"+k+"}}", v)
	}
	for _, m := range dataRE.FindAllStringSubmatch(src, -1) {
		src = strings.ReplaceAll(src, "{{LEN"+m[1]+"}}", strconv.Itoa(unescapedLen(m[2])))
	}
	if i := strings.Index(src, "{{"); i >= 0 {
		return "", fmt.Errorf("%s: unfilled placeholder near %q", name, src[i:min(len(src), i+20)])
	}
	if strings.HasPrefix(strings.TrimSpace(stripComments(src)), "(module") {
		return src, nil
	}
	var imports, body []string
	for _, line := range strings.Split(src, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "(import ") {
			imports = append(imports, line)
		} else {
			body = append(body, line)
		}
	}
	return "(module\n" + strings.Join(imports, "\n") + Prelude + strings.Join(body, "\n") + "\n)", nil
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), ";;") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// unescapedLen is the byte length of a WAT string literal's contents.
func unescapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if isHex(s[i+1]) && i+2 < len(s) && isHex(s[i+2]) {
				i += 2
			} else {
				i++
			}
		}
		n++
	}
	return n
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// Escape makes s a WAT string literal body (without quotes).
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Wasm compiles a guest to wasm bytes.
func Wasm(name string, vars map[string]string) ([]byte, error) {
	src, err := Source(name, vars)
	if err != nil {
		return nil, err
	}
	wasm, err := wasmtime.Wat2Wasm(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return wasm, nil
}

// MustWasm is Wasm for tests.
func MustWasm(t testing.TB, name string, vars map[string]string) []byte {
	t.Helper()
	wasm, err := Wasm(name, vars)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// HostCall fills the hostcall.wat template: call import once with req.
func HostCall(t testing.TB, imp, req string) []byte {
	return HostCallWith(t, map[string]string{"IMPORT": imp, "REQ": Escape(req), "REQLEN": strconv.Itoa(len(req))})
}

// HostCallWith fills hostcall.wat with explicit variables; missing REPEAT,
// REQPTR and OUTPTR default to 1, 1024 and 0.
func HostCallWith(t testing.TB, vars map[string]string) []byte {
	t.Helper()
	full := map[string]string{"REPEAT": "1", "REQPTR": "1024", "OUTPTR": "0"}
	for k, v := range vars {
		full[k] = v
	}
	return MustWasm(t, "hostcall.wat", full)
}

var (
	goBuildMu sync.Mutex
	goBuilt   = map[string][]byte{}
)

// GoGuest builds runnerd/testdata/<name> (a package using sdk/guest) as a
// wasip1 reactor, the way extension authors build handlers, once per test
// binary.
func GoGuest(t testing.TB, name string) []byte {
	t.Helper()
	goBuildMu.Lock()
	defer goBuildMu.Unlock()
	if b, ok := goBuilt[name]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	root := filepath.Join(Dir(), "..", "..")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, "./runnerd/testdata/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s for wasip1: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	goBuilt[name] = b
	return b
}
