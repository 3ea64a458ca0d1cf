package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// ascTimeout bounds one AssemblyScript compile (a few seconds each).
const ascTimeout = 3 * time.Minute

// asBuilds caches the modules compiled by this test process, by project
// directory, and the directory that resolves "@extedge/guest".
var asBuilds struct {
	mu   sync.Mutex
	dir  string
	done map[string]*asBuild
}

type asBuild struct {
	once sync.Once
	wasm []byte
	err  error
}

// AssemblyScript compiles the AssemblyScript project in dir (its
// asconfig.json, target release) and returns the module. The compiler is
// the one sdk/assemblyscript's package-lock.json pins, installed by
// [NPMPackages]; "@extedge/guest" resolves to this checkout's
// sdk/assemblyscript (asc --path), so the project needs no node_modules of
// its own. Each directory is compiled once per test process. Without npm
// and node the test fails with an install hint.
func AssemblyScript(t testing.TB, dir string) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("testenv: asc: %v", err)
	}
	asBuilds.mu.Lock()
	if asBuilds.done == nil {
		asBuilds.done = map[string]*asBuild{}
	}
	b := asBuilds.done[abs]
	if b == nil {
		b = &asBuild{}
		asBuilds.done[abs] = b
	}
	asBuilds.mu.Unlock()
	b.once.Do(func() { b.wasm, b.err = compileAssemblyScript(t, abs) })
	if b.err != nil {
		t.Fatalf("testenv: %v", b.err)
	}
	return b.wasm
}

func compileAssemblyScript(t testing.TB, dir string) ([]byte, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	sdk := filepath.Join(root, "sdk", "assemblyscript")
	modules := NPMPackages(t, sdk)
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found; install Node.js and npm (`apt-get install npm`, which deploy/dev/install-deps.sh does)")
	}
	work, err := asWorkDir(sdk)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(dir))
	out := filepath.Join(work, hex.EncodeToString(sum[:8])+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), ascTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(modules, "assemblyscript", "bin", "asc.js"),
		"--config", "asconfig.json", "--target", "release", "--outFile", out,
		"--path", filepath.Join(work, "packages"))
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("asc in %s: %v\n%s", dir, err, b)
	}
	return os.ReadFile(out)
}

// asWorkDir returns this process's directory for compiled modules, with
// packages/@extedge/guest linked to sdk.
func asWorkDir(sdk string) (string, error) {
	asBuilds.mu.Lock()
	defer asBuilds.mu.Unlock()
	if asBuilds.dir != "" {
		return asBuilds.dir, nil
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("extedge-asc-%d-", os.Getpid()))
	if err != nil {
		return "", err
	}
	registerShared(func() { os.RemoveAll(dir) })
	if err := os.MkdirAll(filepath.Join(dir, "packages", "@extedge"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(sdk, filepath.Join(dir, "packages", "@extedge", "guest")); err != nil {
		return "", err
	}
	asBuilds.dir = dir
	return dir, nil
}
