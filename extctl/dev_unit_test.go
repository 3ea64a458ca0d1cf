package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extedge/extedge/internal/testenv"
)

func TestSetManifestVersionKeepsEveryOtherField(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"name":"com.acme.x","version":"1.2.3","api":{"endpoints":[{"method":"GET"}]},"assets":["ui/**/*"]}`), 0o644)
	if err := setManifestVersion(dir, "0.0.0-dev.7"); err != nil {
		t.Fatal(err)
	}
	got := decodeJSON[map[string]any](t, readFile(t, filepath.Join(dir, "manifest.json")))
	if got["version"] != "0.0.0-dev.7" || got["name"] != "com.acme.x" || got["assets"].([]any)[0] != "ui/**/*" ||
		got["api"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["method"] != "GET" {
		t.Fatalf("manifest after setManifestVersion: %v", got)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDevVersionPattern(t *testing.T) {
	for _, tc := range []struct {
		version string
		dev     bool
	}{
		{"0.0.0-dev.1", true},
		{"0.0.0-dev.42", true},
		{"1.0.0-dev.1", false}, // a release's prerelease is the author's, not dev's
		{"0.0.0-dev.1.2", false},
		{"0.0.0-dev", false},
		{"0.1.0", false},
	} {
		if got := devVersionRE.MatchString(tc.version); got != tc.dev {
			t.Errorf("%s: dev version %v, want %v", tc.version, got, tc.dev)
		}
	}
}

func TestGoModReplaceFindsTheCheckout(t *testing.T) {
	dir := t.TempDir()
	gomod := filepath.Join(dir, "go.mod")
	os.WriteFile(gomod, []byte("module example.com/x\n\nrequire github.com/extedge/extedge v0.0.0\n\n// comment\nreplace github.com/extedge/extedge => \"/src/ext edge\" // checkout\n"), 0o644)
	if got := goModReplace(gomod, sdkModule); got != "/src/ext edge" {
		t.Fatalf("goModReplace = %q", got)
	}
	if got := goModReplace(gomod, "example.com/other"); got != "" {
		t.Fatalf("goModReplace of another module = %q", got)
	}
}

// TestDevDefaultsComeFromTheDemoData: without flags, dev takes the admin
// token and the publisher key of the demo-data directory in the checkout
// the project's go.mod points at, and mints a debug token for the tenant
// with the demo's session secret.
func TestDevDefaultsComeFromTheDemoData(t *testing.T) {
	t.Setenv("EXTEDGE_TOKEN", "")
	t.Setenv("EXTEDGE_GATEWAY_TOKEN", "")
	checkout := t.TempDir()
	keys := filepath.Join(checkout, "demo-data", "keys")
	mustRun(t, "keygen", "--out", keys, "--publisher", "Acme Inc.")
	os.WriteFile(filepath.Join(keys, "admin.token"), []byte("admin-tok\n"), 0o600)
	os.WriteFile(filepath.Join(keys, "session.secret"), []byte("s3cret\n"), 0o600)
	project := t.TempDir()
	os.WriteFile(filepath.Join(project, "manifest.json"), []byte(`{"name":"com.acme.notes"}`), 0o644)
	os.WriteFile(filepath.Join(project, "go.mod"), []byte("module x\n\nreplace github.com/extedge/extedge => "+checkout+"\n"), 0o644)

	f := new(devFlags)
	fs := newFlagSet("dev")
	f.rf = addRegistryFlags(fs, time.Minute)
	f.gw = addGatewayFlags(fs)
	f.gw.url, f.tenant, f.interval = DefaultGateway, "demo", time.Second
	c := &cli{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	d, err := newDevLoop(c, f, project)
	if err != nil {
		t.Fatal(err)
	}
	defer d.sess.cancel()
	if f.rf.tokenFile != filepath.Join(keys, "admin.token") || d.key == nil {
		t.Fatalf("token file %q, key %v: want the demo's", f.rf.tokenFile, d.key)
	}
	if d.stream == nil || !strings.HasPrefix(d.stream.url, DefaultGateway+"/api/ext-debug/stream?extension=com.acme.notes") {
		t.Fatalf("stream %+v", d.stream)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(d.stream.token, claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil }); err != nil {
		t.Fatalf("minted token does not verify with the session secret: %v", err)
	}
	if claims["tenant"] != "demo" || !strings.Contains(strings.Join(toStrings(claims["perms"]), " "), "extension:debug") || claims["iss"] != "psa" {
		t.Fatalf("minted claims %v", claims)
	}

	// Without demo data and without --key or --unsigned, dev says what it needs.
	os.WriteFile(filepath.Join(project, "go.mod"), []byte("module x\n"), 0o644)
	f2 := &devFlags{rf: f.rf, gw: &gatewayFlags{url: DefaultGateway}, tenant: "demo", interval: time.Second}
	f2.rf.tokenFile = ""
	t.Chdir(t.TempDir())
	if _, err := newDevLoop(c, f2, project); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Fatalf("without demo data: %v", err)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestDevStopsABuildWhenCancelled: cancelling dev in the middle of a long
// build ends the build's whole process group and returns exit 0 at once.
func TestDevStopsABuildWhenCancelled(t *testing.T) {
	project := t.TempDir()
	os.WriteFile(filepath.Join(project, "manifest.json"), []byte(`{"name":"com.acme.slow"}`), 0o644)
	pidFile := filepath.Join(project, "sleep.pid")
	os.WriteFile(filepath.Join(project, "build.sh"), []byte("#!/bin/sh\nsleep 60 &\necho $! > "+pidFile+"\nwait\n"), 0o755)
	t.Setenv("EXTEDGE_TOKEN", "tok")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &syncBuffer{}
	c := &cli{stdout: &syncBuffer{}, stderr: stderr, stdin: strings.NewReader(""), ctx: ctx}
	done := make(chan int, 1)
	go func() {
		done <- c.main([]string{"dev", project, "--unsigned", "--no-follow", "--registry", "http://127.0.0.1:1", "--demo-data", t.TempDir()})
	}()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if _, err := os.Stat(pidFile); err != nil || !strings.Contains(stderr.String(), "dev: building (./build.sh)") {
			return fmt.Errorf("build not running yet: %q", stderr.String())
		}
		return nil
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dev did not stop while building")
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	testenv.WaitFor(t, 5*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("the build's sleep (pid %d) still runs", pid)
		}
		return nil
	})
}

// TestDevBuildsAGoProjectWithoutBuildScript: without build.sh, dev builds
// ./guest for wasip1 and stages it with manifest.json and ui/ as the
// scaffold's build.sh does.
func TestDevBuildsAGoProjectWithoutBuildScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm guest")
	}
	project := filepath.Join(t.TempDir(), "notes")
	mustRun(t, "new", "com.acme.notes", "--dir", project, "--sdk", repoRoot(t))
	os.Remove(filepath.Join(project, "build.sh"))
	d := &devLoop{c: &cli{stdout: &syncBuffer{}, stderr: &syncBuffer{}}, dir: project}
	stage, err := d.build(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if stage != filepath.Join(project, "build", "bundle") {
		t.Fatalf("stage %s", stage)
	}
	for _, f := range []string{"dist/main.wasm", "manifest.json", "ui/index.html", "ui/app.js"} {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("stage lacks %s: %v", f, err)
		}
	}
	if _, _, err := packAtomic(stage, filepath.Join(t.TempDir(), "b.tar.zst")); err != nil {
		t.Fatalf("the staged tree does not pack: %v", err)
	}
}

// TestDevBuildPicksTheProjectsBuild: build.sh wins over package.json,
// which wins over go.mod; the stage is build/bundle when the build wrote a
// manifest there, else the project directory itself.
func TestDevBuildPicksTheProjectsBuild(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
		wantStage string // relative to the project
		wantRan   string
	}{
		{"build.sh wins over package.json", map[string]string{
			"build.sh":     "#!/bin/sh\nmkdir -p build/bundle && cp manifest.json build/bundle/ && echo sh > ran\n",
			"package.json": `{"scripts":{"build":"echo npm > ran"}}`,
		}, "build/bundle", "sh"},
		{"package.json runs npm run build", map[string]string{
			"package.json": `{"scripts":{"build":"mkdir -p build/bundle && cp manifest.json build/bundle/ && echo npm > ran"}}`,
		}, "build/bundle", "npm"},
		{"a build that stages nothing packs the project", map[string]string{
			"package.json": `{"scripts":{"build":"echo npm > ran"}}`,
		}, ".", "npm"},
		{"nothing to build packs the project", map[string]string{}, ".", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.files["package.json"]; ok {
				if _, err := exec.LookPath("npm"); err != nil {
					t.Fatal("npm not found; install it (`apt-get install npm`, which deploy/dev/install-deps.sh does)")
				}
			}
			project := t.TempDir()
			os.WriteFile(filepath.Join(project, "manifest.json"), []byte(`{"name":"com.acme.x"}`), 0o644)
			for name, content := range tc.files {
				os.WriteFile(filepath.Join(project, name), []byte(content), 0o755)
			}
			d := &devLoop{c: &cli{stdout: &syncBuffer{}, stderr: &syncBuffer{}}, dir: project}
			stage, err := d.build(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(project, tc.wantStage); stage != want {
				t.Errorf("stage %s, want %s", stage, want)
			}
			ran, _ := os.ReadFile(filepath.Join(project, "ran"))
			if got := strings.TrimSpace(string(ran)); got != tc.wantRan {
				t.Errorf("ran %q, want %q", got, tc.wantRan)
			}
		})
	}
}

func TestCopyDirLeavesOutHiddenFilesAndSkippedTopDirs(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, f := range []string{"manifest.json", "dist/main.wasm", "ui/.swp", ".git/HEAD", "node_modules/x/index.js", "build/dev.tar.zst", "ui/build/keep.js"} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755)
		os.WriteFile(filepath.Join(src, f), []byte(f), 0o644)
	}
	if err := copyDir(src, dst, map[string]bool{"build": true, "node_modules": true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, " ") != "dist/main.wasm manifest.json ui/build/keep.js" {
		t.Fatalf("copied %v", got)
	}
}
