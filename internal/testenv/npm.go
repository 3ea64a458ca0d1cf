package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// npmInstallTimeout bounds one `npm ci` (a few small packages).
const npmInstallTimeout = 5 * time.Minute

// NPMPackages installs the npm packages that dir's package.json and
// package-lock.json pin, with `npm ci --ignore-scripts`, and returns the
// node_modules directory. The install is cached per lock file under the
// user cache directory (extedge/npm/<sha256 of the lock>), so it runs once
// per machine and lock; a half-finished install is never reused because it
// becomes visible only by a final rename. Without npm the test fails with
// an install hint: the tests that need it have no fallback.
func NPMPackages(t testing.TB, dir string) string {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatalf("testenv: npm: %v", err)
	}
	pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatalf("testenv: npm: %v", err)
	}
	sum := sha256.Sum256(append(append(pkg, 0), lock...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "extedge", "npm", hex.EncodeToString(sum[:8]))
	modules := filepath.Join(root, "node_modules")
	if _, err := os.Stat(modules); err == nil {
		return modules
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("testenv: npm not found; install Node.js and npm (`apt-get install npm`, which deploy/dev/install-deps.sh does)")
	}
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		t.Fatalf("testenv: npm: %v", err)
	}
	work, err := os.MkdirTemp(filepath.Dir(root), "install-")
	if err != nil {
		t.Fatalf("testenv: npm: %v", err)
	}
	defer os.RemoveAll(work)
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(work, name), b, 0o644); err != nil {
			t.Fatalf("testenv: npm: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: npm ci in %s (pinned by %s): %v\n%s", work, dir, err, out)
	}
	// Another test process may have finished first; either copy is complete.
	if err := os.Rename(work, root); err != nil {
		if _, statErr := os.Stat(modules); statErr != nil {
			t.Fatalf("testenv: npm: %v", err)
		}
	}
	return modules
}
