package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches the binaries built by this test process: one `go build`
// per (package, tags), shared by every test of the binary.
var builds struct {
	mu   sync.Mutex
	dir  string
	done map[string]*buildResult
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the main package pkg ("./runnerd", "./registryd",
// "./cmd/caddy", relative to the module root) once per test process and
// returns the binary's path. Extra build tags may be given; ./cmd/caddy is
// always built the way the Makefile does (CGO_ENABLED=0, tags nobadger,
// nomysql, nopgx). The go build cache makes repeated runs cheap.
//
// Binaries live in one temporary directory per process, removed by Main
// (without Main it is left in $TMPDIR as extedge-bin-<pid>).
func Binary(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	env := []string{}
	if pkg == "./cmd/caddy" {
		env = append(env, "CGO_ENABLED=0")
		tags = append(tags, "nobadger", "nomysql", "nopgx")
	}
	key := pkg + "|" + strings.Join(tags, ",")
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[string]*buildResult{}
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", fmt.Sprintf("extedge-bin-%d-", os.Getpid()))
		if err != nil {
			builds.mu.Unlock()
			t.Fatalf("testenv: %v", err)
		}
		builds.dir = dir
		registerShared(func() { os.RemoveAll(dir) })
	}
	res := builds.done[key]
	if res == nil {
		res = &buildResult{}
		builds.done[key] = res
	}
	dir := builds.dir
	builds.mu.Unlock()

	res.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			res.err = err
			return
		}
		name := filepath.Base(pkg)
		if len(tags) > 0 {
			name += "-" + strings.Join(tags, "_")
		}
		out := filepath.Join(dir, name)
		args := []string{"build", "-o", out}
		if len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
		args = append(args, pkg)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			res.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			return
		}
		res.path = out
	})
	if res.err != nil {
		t.Fatalf("testenv: %v", res.err)
	}
	return res.path
}

// ModuleRoot returns the directory holding the repository's go.mod,
// searching upwards from the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/extedge/extedge") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod of github.com/extedge/extedge not found above the working directory")
		}
		dir = parent
	}
}
