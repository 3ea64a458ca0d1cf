package main

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/extedge/extedge/internal/manifest"
)

// templateFS holds the projects `extctl new` writes: template/ is the Go
// project (a simplified copy of examples/agreements), template-as/ the same
// notes extension in AssemblyScript. Every file ends in ".tmpl" so that the
// Go tool never treats the templates as packages or as a nested module.
//
//go:embed template template-as
var templateFS embed.FS

// Languages of `extctl new --lang`, each with its template directory.
var templateDirs = map[string]string{"go": "template", "assemblyscript": "template-as"}

// sdkModule is the module that provides the guest SDK. It is not on any
// module proxy, so generated projects reach it through a replace directive.
const sdkModule = "github.com/extedge/extedge"

// projectData fills the templates.
type projectData struct {
	Name          string // manifest name, e.g. com.acme.notes
	Label         string // last label of Name, e.g. notes
	Title         string // human title derived from Label
	Module        string // Go module path of the project
	PublisherJSON string // publisher as a JSON string literal
	SDKPath       string // replace target, quoted when go.mod needs it
	GoVersion     string // the SDK module's go line
	ASSDKJSON     string // package.json dependency on the checkout's sdk/assemblyscript, a JSON string
}

func newCmd(fs *flagSet) runFunc {
	lang := fs.String("lang", "go", "guest `LANG`: go or assemblyscript")
	dir := fs.String("dir", "", "project `DIR` (default: ./ and the last label of NAME)")
	publisher := fs.String("publisher", "", "manifest publisher `NAME` (default: the label of NAME before the last, capitalised)")
	sdk := fs.String("sdk", "", "extedge checkout `PATH` providing "+sdkModule+" (default: searched upward from here and from extctl's directory)")
	fs.documentEnv("sdk", "EXTEDGE_SDK") // findSDK reads it, to name it in errors
	asJSON := fs.jsonFlag()
	return func(c *cli, pos []string) error {
		if len(pos) != 1 {
			return usageError{"new needs one NAME, e.g. com.acme.notes"}
		}
		name := pos[0]
		tmplDir, ok := templateDirs[*lang]
		if !ok {
			return usageError{fmt.Sprintf("--lang %q is not go or assemblyscript", *lang)}
		}
		if !manifest.ValidName(name) {
			return usageError{fmt.Sprintf("NAME %q is not a valid extension name (reverse-domain, lowercase labels of a-z 0-9 and inner -, at least two labels, at most 128 characters)", name)}
		}
		labels := strings.Split(name, ".")
		if *publisher == "" {
			*publisher = capitalise(labels[len(labels)-2])
		}
		if *dir == "" {
			*dir = labels[len(labels)-1]
		}

		cwd, err := os.Getwd()
		if err != nil {
			return err
		}
		exe, _ := os.Executable()
		if exe != "" {
			if resolved, err := filepath.EvalSymlinks(exe); err == nil {
				exe = resolved
			}
		}
		sdkRoot, err := findSDK(*sdk, os.Getenv("EXTEDGE_SDK"), cwd, exe)
		if err != nil {
			return err
		}
		// The project declares the SDK module's go version: the go command
		// refuses a dependency that needs a newer one than the main module's.
		goVersion, err := goModDirective(filepath.Join(sdkRoot, "go.mod"), "go")
		if err != nil {
			return err
		}
		pubJSON, _ := json.Marshal(*publisher)
		asSDK := filepath.Join(sdkRoot, "sdk", "assemblyscript")
		if *lang == "assemblyscript" {
			if _, err := os.Stat(filepath.Join(asSDK, "package.json")); err != nil {
				return fmt.Errorf("the extedge checkout %s has no AssemblyScript SDK (sdk/assemblyscript/package.json): %v", sdkRoot, err)
			}
		}
		asSDKJSON, _ := json.Marshal("file:" + filepath.ToSlash(asSDK))
		data := projectData{
			Name:          name,
			Label:         labels[len(labels)-1],
			Title:         capitalise(strings.ReplaceAll(labels[len(labels)-1], "-", " ")),
			Module:        name,
			PublisherJSON: string(pubJSON),
			SDKPath:       goModPath(sdkRoot),
			GoVersion:     goVersion,
			ASSDKJSON:     string(asSDKJSON),
		}
		files, err := renderProject(tmplDir, data)
		if err != nil {
			return err
		}
		// The manifest carries user input (name, publisher): check it now
		// rather than at the first pack.
		if _, err := manifest.Parse(files["manifest.json"].data, manifest.Options{}); err != nil {
			return fmt.Errorf("generated manifest is invalid (check --publisher): %v", err)
		}
		if err := writeProject(*dir, files); err != nil {
			return err
		}

		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		if *asJSON {
			return c.printJSON(map[string]any{"dir": *dir, "name": name, "module": data.Module, "lang": *lang,
				"publisher": *publisher, "sdk": sdkRoot, "files": paths})
		}
		fmt.Fprintf(c.stdout, "created %s in %s (SDK: %s)\n", name, *dir, sdkRoot)
		if *lang == "assemblyscript" {
			fmt.Fprintf(c.stdout, "next:\n  cd %s\n  npm install     # the pinned compiler and the SDK\n  npm test        # build, then the handlers under node --test\n  npm run pack    # build, then extctl pack into build/\n", *dir)
			return nil
		}
		fmt.Fprintf(c.stdout, "next:\n  cd %s\n  go test ./...   # handler tests, natively\n  ./build.sh      # wasm, staging and extctl pack into build/\n", *dir)
		return nil
	}
}

// projectFile is one rendered file of a new project.
type projectFile struct {
	data []byte
	mode os.FileMode
}

// renderProject executes every template under root, keyed by the path it
// gets in the project ("guest/main.go.tmpl" → "guest/main.go",
// "gitignore.tmpl" → ".gitignore").
func renderProject(root string, data projectData) (map[string]projectFile, error) {
	files := map[string]projectFile{}
	err := fs.WalkDir(templateFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := templateFS.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		if path.Base(rel) == "gitignore" {
			rel = path.Join(path.Dir(rel), ".gitignore")
		}
		tmpl, err := template.New(rel).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return fmt.Errorf("template %s: %v", rel, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, data); err != nil {
			return fmt.Errorf("template %s: %v", rel, err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") {
			mode = 0o755
		}
		files[rel] = projectFile{data: b.Bytes(), mode: mode}
		return nil
	})
	return files, err
}

// writeProject creates dir (or fills it when it exists and is empty) with
// files. It refuses a non-empty directory, and on failure removes what it
// wrote, so a failed `new` can simply be retried.
func writeProject(dir string, files map[string]projectFile) (err error) {
	entries, statErr := os.ReadDir(dir)
	switch {
	case statErr == nil && len(entries) > 0:
		return fmt.Errorf("%s exists and is not empty; refusing to overwrite it (choose another --dir)", dir)
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return fmt.Errorf("using %s as the project directory: %v", dir, statErr)
	}
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var written []string
	defer func() {
		if err == nil {
			return
		}
		if created {
			os.RemoveAll(dir)
			return
		}
		for _, p := range written {
			os.Remove(p)
		}
	}()
	for rel, f := range files {
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, f.data, f.mode); err != nil {
			return err
		}
		written = append(written, target)
	}
	return nil
}

// findSDK locates the extedge checkout that provides the guest SDK: the
// --sdk flag, else $EXTEDGE_SDK, else the first directory at or above cwd,
// then at or above exe's directory, whose go.mod declares sdkModule. It
// returns an absolute path.
func findSDK(flagPath, envPath, cwd, exe string) (string, error) {
	for _, given := range []struct{ from, path string }{{"--sdk", flagPath}, {"EXTEDGE_SDK", envPath}} {
		if given.path == "" {
			continue
		}
		abs, err := filepath.Abs(given.path)
		if err != nil {
			return "", err
		}
		if err := checkSDKRoot(abs); err != nil {
			return "", fmt.Errorf("%s %s: %v", given.from, given.path, err)
		}
		return abs, nil
	}
	var starts []string
	if cwd != "" {
		starts = append(starts, cwd)
	}
	if exe != "" {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; {
			if checkSDKRoot(dir) == nil {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cannot find the extedge SDK (a checkout whose go.mod is module %s) above %s or extctl's directory; pass --sdk PATH or set EXTEDGE_SDK", sdkModule, cwd)
}

// checkSDKRoot reports why dir is not an extedge checkout with the guest SDK.
func checkSDKRoot(dir string) error {
	mod, err := goModDirective(filepath.Join(dir, "go.mod"), "module")
	if err != nil {
		return err
	}
	if mod != sdkModule {
		return fmt.Errorf("go.mod is module %q, not %s", mod, sdkModule)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sdk", "guest")); err != nil || !fi.IsDir() {
		return errors.New("has no sdk/guest directory")
	}
	return nil
}

// goModDirective returns the value of a single-line directive ("module",
// "go") of a go.mod file.
func goModDirective(gomod, directive string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line, _, _ = strings.Cut(line, "//"); line == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == directive {
			if v, err := strconv.Unquote(fields[1]); err == nil {
				return v, nil
			}
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s has no %s directive", gomod, directive)
}

// goModPath writes a filesystem path as go.mod expects it: quoted when it
// contains characters that would split or end the token.
func goModPath(p string) string {
	if strings.ContainsAny(p, " \t\"'`\\") {
		return strconv.Quote(p)
	}
	return p
}

// capitalise upper-cases the first ASCII letter of s.
func capitalise(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
