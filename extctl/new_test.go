package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	sdkjs "github.com/extedge/extedge/sdk/js"
	sdkui "github.com/extedge/extedge/sdk/ui"
)

// repoRoot is the extedge checkout this test runs in (the SDK to use).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSDKRoot(root); err != nil {
		t.Fatalf("test must run inside the extedge checkout: %v", err)
	}
	return root
}

// goCmd runs the go command in dir offline: no proxy and no checksum
// database, so the generated project must build from the replace alone.
func goCmd(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod -buildvcs=false")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// The scaffold must work out of the box: tidy offline, its own tests
// pass, build.sh compiles the wasm and packs a valid bundle.
func TestNewScaffoldsAWorkingProject(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "notes")
	out := mustRun(t, "new", "com.acme.notes", "--dir", dir, "--sdk", root)
	if !strings.Contains(out, "created com.acme.notes in "+dir) {
		t.Fatalf("output %q", out)
	}

	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(files)
	want := ".gitignore Makefile README.md build.sh go.mod guest/guest_test.go guest/main.go manifest.json ui/app.js ui/index.html ui/style.css"
	if strings.Join(files, " ") != want {
		t.Fatalf("files %v, want %s", files, want)
	}
	t.Run("the UI is built on the UI kit the gateway serves", func(t *testing.T) {
		var ui strings.Builder
		for _, f := range []string{"ui/index.html", "ui/app.js"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			ui.Write(b)
		}
		refs := regexp.MustCompile(`/ext-sdk/v1/([A-Za-z0-9._-]+)`).FindAllStringSubmatch(ui.String(), -1)
		seen := map[string]bool{}
		for _, r := range refs {
			seen[r[1]] = true
			_, errJS := fs.Stat(sdkjs.FS, r[1])
			_, errUI := fs.Stat(sdkui.FS, r[1])
			if errJS != nil && errUI != nil {
				t.Errorf("the UI loads /ext-sdk/v1/%s, which the gateway does not serve", r[1])
			}
		}
		for _, want := range []string{"ui.js", "ui.css", "iframe.js"} {
			if !seen[want] {
				t.Errorf("the UI does not load /ext-sdk/v1/%s", want)
			}
		}
		kit, _ := fs.ReadFile(sdkui.FS, "ui.js")
		for _, el := range []string{"ext-data-table", "ext-button"} {
			if !strings.Contains(ui.String(), "<"+el) || !strings.Contains(string(kit), `["`+el+`", `) {
				t.Errorf("the UI does not use <%s> defined by ui.js", el)
			}
		}
	})
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(gomod), "module com.acme.notes\n") ||
		!strings.Contains(string(gomod), "replace github.com/extedge/extedge => "+root+"\n") {
		t.Fatalf("go.mod:\n%s", gomod)
	}
	if fi, err := os.Stat(filepath.Join(dir, "build.sh")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("build.sh is not executable: %v", err)
	}

	start := time.Now()
	goCmd(t, dir, nil, "mod", "tidy")
	if testOut := goCmd(t, dir, nil, "test", "-count=1", "./..."); !strings.Contains(testOut, "ok  \tcom.acme.notes/guest") {
		t.Fatalf("go test output:\n%s", testOut)
	}
	goCmd(t, dir, nil, "vet", "./...")
	// Without $EXTCTL, build.sh finds the checkout (for bin/extctl) this way.
	script, _ := os.ReadFile(filepath.Join(dir, "build.sh"))
	if !strings.Contains(string(script), `go list -m -f '{{.Dir}}' github.com/extedge/extedge`) {
		t.Fatalf("build.sh does not locate the checkout with go list:\n%s", script)
	}
	if sdk := strings.TrimSpace(goCmd(t, dir, nil, "list", "-m", "-f", "{{.Dir}}", "github.com/extedge/extedge")); sdk != root {
		t.Fatalf("go list -m finds the SDK at %q, want %q", sdk, root)
	}
	t.Logf("tidy + test + vet of the generated project: %v", time.Since(start).Round(time.Millisecond))

	// build.sh with a freshly built extctl (not whatever is on PATH).
	extctl := filepath.Join(tmp, "extctl")
	goCmd(t, ".", nil, "build", "-o", extctl, ".")
	start = time.Now()
	cmd := exec.Command(filepath.Join(dir, "build.sh"))
	cmd.Dir = tmp // build.sh must not depend on the caller's directory
	cmd.Env = append(os.Environ(), "EXTCTL="+extctl)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, stderr.String())
	}
	t.Logf("build.sh (wasip1 build + pack): %v", time.Since(start).Round(time.Millisecond))
	hash := strings.TrimSpace(stdout.String())

	bundlePath := filepath.Join(dir, "build", "notes.tar.zst")
	got, _, entries, m, err := readBundle(bundlePath)
	if err != nil {
		t.Fatalf("the packed bundle does not validate: %v", err)
	}
	if got != hash {
		t.Fatalf("build.sh printed %q, bundle hash is %s", hash, got)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if strings.Join(names, " ") != "dist/main.wasm manifest.json ui/app.js ui/index.html ui/style.css" {
		t.Fatalf("bundle entries %v", names)
	}
	if m.Name != "com.acme.notes" || m.Publisher != "Acme" || m.Entry != "dist/main.wasm" {
		t.Fatalf("manifest %+v", m)
	}
	have := func(p string) bool {
		for _, n := range names {
			if n == p {
				return true
			}
		}
		return false
	}
	for _, ep := range m.API.Endpoints {
		if ref, err := m.HandlerTarget(ep.Handler, have); err != nil || ref.Module != "dist/main.wasm" {
			t.Fatalf("%s resolves to %+v, %v", ep.Handler, ref, err)
		}
	}

	// extctl pack in-process agrees with the script's pack.
	again := strings.TrimSpace(mustRun(t, "pack", filepath.Join(dir, "build", "bundle"), "-o", filepath.Join(tmp, "again.tar.zst")))
	if again != hash {
		t.Fatalf("in-process pack %s, build.sh %s", again, hash)
	}
}

func TestNewRefusesANonEmptyDirectory(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.txt")
	os.WriteFile(keep, []byte("mine"), 0o644)
	code, _, errOut := run(t, "new", "com.acme.notes", "--dir", dir, "--sdk", root)
	if code != 1 || !strings.Contains(errOut, "exists and is not empty; refusing to overwrite") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine" {
		t.Fatal("existing file was touched")
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); !os.IsNotExist(err) {
		t.Fatal("files were written into a non-empty directory")
	}
}

func TestNewFillsAnEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "new", "com.acme.notes", "--dir", dir, "--sdk", repoRoot(t))
	if _, err := os.Stat(filepath.Join(dir, "guest", "main.go")); err != nil {
		t.Fatal(err)
	}
}

func TestNewDefaultsTheDirectoryToTheLastLabel(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	t.Chdir(tmp)
	mustRun(t, "new", "com.example.ticket-sync", "--sdk", root)
	raw, err := os.ReadFile(filepath.Join(tmp, "ticket-sync", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["name"] != "com.example.ticket-sync" || m["publisher"] != "Example" {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	html, _ := os.ReadFile(filepath.Join(tmp, "ticket-sync", "ui", "index.html"))
	if !strings.Contains(string(html), "<title>Ticket sync</title>") {
		t.Fatalf("index.html title:\n%s", html)
	}
}

func TestNewJSONOutputAndPublisher(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	out := mustRun(t, "new", "com.acme.notes", "--dir", dir, "--sdk", repoRoot(t), "--publisher", `Acme "Quoted" Inc.`, "--json")
	var res struct {
		Dir, Name, Module, Publisher, SDK string
		Files                             []string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Dir != dir || res.Module != "com.acme.notes" || res.Publisher != `Acme "Quoted" Inc.` || len(res.Files) != 11 {
		t.Fatalf("json %+v", res)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["publisher"] != `Acme "Quoted" Inc.` {
		t.Fatalf("publisher not JSON-escaped: %s", raw)
	}
}

func TestNewRejects(t *testing.T) {
	root := repoRoot(t)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"a single-label name is a usage error", []string{"new", "notes"}, 2, "not a valid extension name"},
		{"an uppercase name is a usage error", []string{"new", "com.Acme.notes"}, 2, "not a valid extension name"},
		{"an empty label is a usage error", []string{"new", "com..notes"}, 2, "not a valid extension name"},
		{"a label with a leading dash is a usage error", []string{"new", "com.-acme.notes"}, 2, "not a valid extension name"},
		{"two names are a usage error", []string{"new", "com.a.b", "com.a.c"}, 2, "needs one NAME"},
		{"no name is a usage error", []string{"new"}, 2, "needs one NAME"},
		{"a publisher over 128 characters fails manifest validation", []string{"new", "com.acme.notes", "--publisher", strings.Repeat("p", 129)}, 1, "generated manifest is invalid"},
		{"an unknown --lang is a usage error", []string{"new", "com.acme.notes", "--lang", "rust"}, 2, `--lang "rust" is not go or assemblyscript`},
		{"an --sdk that is not the extedge module is refused", []string{"new", "com.acme.notes", "--sdk", "testdata"}, 1, "--sdk testdata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			args := append(tt.args, "--dir", dir)
			if !strings.Contains(strings.Join(tt.args, " "), "--sdk") {
				args = append(args, "--sdk", root)
			}
			code, _, errOut := run(t, args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d containing %q", code, errOut, tt.code, tt.msg)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a failed new left %s behind", dir)
			}
		})
	}
}

// The AssemblyScript scaffold has its npm project files, pins the compiler
// and takes the SDK from the checkout; sdk/assemblyscript/wasmtest builds,
// tests, packs and runs it end to end.
func TestNewAssemblyScriptFiles(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(t.TempDir(), "notes")
	out := mustRun(t, "new", "com.acme.notes", "--lang", "assemblyscript", "--dir", dir, "--sdk", root)
	if !strings.Contains(out, "npm install") || !strings.Contains(out, "npm run pack") {
		t.Fatalf("output %q", out)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(files)
	want := ".gitignore README.md asconfig.json assembly/index.ts manifest.json package.json scripts/stage.mjs test/notes.test.mjs ui/app.js ui/index.html ui/style.css"
	if strings.Join(files, " ") != want {
		t.Fatalf("files %v, want %s", files, want)
	}
	var pkg struct {
		Scripts         map[string]string `json:"scripts"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "package.json"))
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("package.json: %v\n%s", err, b)
	}
	if pkg.DevDependencies["assemblyscript"] != "0.28.20" ||
		pkg.DevDependencies["@extedge/guest"] != "file:"+filepath.ToSlash(filepath.Join(root, "sdk", "assemblyscript")) {
		t.Fatalf("devDependencies %v", pkg.DevDependencies)
	}
	for _, s := range []string{"build", "test", "pack"} {
		if pkg.Scripts[s] == "" {
			t.Errorf("package.json has no %q script", s)
		}
	}
}

// fakeCheckout makes dir look like an extedge checkout (or, with another
// module name, like an unrelated module).
func fakeCheckout(t *testing.T, dir, module string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sdk", "guest"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+module+" // a comment\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindSDK(t *testing.T) {
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "extedge")
	fakeCheckout(t, repo, sdkModule)
	other := filepath.Join(repo, "nested", "other")
	fakeCheckout(t, other, "example.com/other") // a decoy module inside the checkout
	deep := filepath.Join(other, "a", "b")
	os.MkdirAll(deep, 0o755)
	exeDir := filepath.Join(repo, "bin")
	os.MkdirAll(exeDir, 0o755)
	elsewhere := filepath.Join(tmp, "elsewhere")
	os.MkdirAll(elsewhere, 0o755)

	tests := []struct {
		name                string
		flag, env, cwd, exe string
		want                string
		errContains         string
	}{
		{"--sdk wins over everything", repo, "/nonexistent", elsewhere, "", repo, ""},
		{"--sdk naming another module is an error", other, "", deep, "", "", `--sdk ` + other + `: go.mod is module "example.com/other"`},
		{"--sdk without go.mod is an error", elsewhere, "", deep, "", "", "--sdk " + elsewhere},
		{"EXTEDGE_SDK is used without --sdk", "", repo, elsewhere, "", repo, ""},
		{"a bad EXTEDGE_SDK is an error, not skipped", "", elsewhere, deep, "", "", "EXTEDGE_SDK " + elsewhere},
		{"walking up from the current directory skips other modules", "", "", deep, "", repo, ""},
		{"the executable's directory is searched next", "", "", elsewhere, filepath.Join(exeDir, "extctl"), repo, ""},
		{"nothing found explains the flag and env var", "", "", elsewhere, filepath.Join(elsewhere, "extctl"), "", "pass --sdk PATH or set EXTEDGE_SDK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findSDK(tt.flag, tt.env, tt.cwd, tt.exe)
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("err %v, want it to contain %q", err, tt.errContains)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findSDK = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGoModPathQuotesWhenNeeded(t *testing.T) {
	for in, want := range map[string]string{
		"/work/extedge":  "/work/extedge",
		"/home/a b/ext":  `"/home/a b/ext"`,
		`C:\src\extedge`: `"C:\\src\\extedge"`,
	} {
		if got := goModPath(in); got != want {
			t.Errorf("goModPath(%q) = %s, want %s", in, got, want)
		}
	}
}
