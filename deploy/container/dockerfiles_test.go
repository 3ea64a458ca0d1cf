// Package container holds the image build files of deploy/container and the
// test that reads them for the rules of issue 15 (no Docker daemon needed):
// non-root runtime users, base images pinned by tag, module downloads in
// their own layer, no keys copied in, glibc of runnerd's builder and runtime
// matching, and a gateway that has writable XDG directories for Caddy.
package container

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY…
	args string
}

type stage struct {
	from, name string
	ins        []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s:%d: %s before FROM", path, in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", path)
	}
	return stages
}

func dockerfiles(t *testing.T) []string {
	files, err := filepath.Glob("Dockerfile.*")
	if err != nil || len(files) != 3 {
		t.Fatalf("want Dockerfile.gateway, .registryd, .runnerd; got %v (%v)", files, err)
	}
	return files
}

var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$`)

func TestBaseImagesArePinned(t *testing.T) {
	for _, f := range dockerfiles(t) {
		stages := parseDockerfile(t, f)
		names := map[string]bool{}
		for _, st := range stages {
			if names[st.from] {
				continue // FROM an earlier stage
			}
			if st.name != "" {
				names[st.name] = true
			}
			img := st.from
			if !pinnedImage.MatchString(img) || strings.Contains(img, "$") {
				t.Errorf("%s: FROM %s: want name:tag (or a digest), no variables", f, img)
				continue
			}
			tag := ""
			if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
				tag = strings.SplitN(img[i+1:], "@", 2)[0]
			}
			if !strings.Contains(img, "@sha256:") && (tag == "" || tag == "latest") {
				t.Errorf("%s: FROM %s is not pinned to a version tag", f, img)
			}
			// A version in the tag: golang:1.26.8-bookworm, debian:12.11-slim.
			if tag != "" && !regexp.MustCompile(`\d`).MatchString(tag) {
				t.Errorf("%s: FROM %s: the tag names no version", f, img)
			}
		}
	}
}

// finalUser is the USER in effect in the last stage.
func finalUser(st stage) string {
	user := ""
	for _, in := range st.ins {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	return user
}

func TestRuntimeRunsAsNonRoot(t *testing.T) {
	for _, f := range dockerfiles(t) {
		stages := parseDockerfile(t, f)
		user := finalUser(stages[len(stages)-1])
		uid, _, _ := strings.Cut(user, ":")
		if uid == "" || uid == "0" || uid == "root" {
			t.Errorf("%s: the runtime stage runs as %q; want a non-root USER (65532:65532)", f, user)
		}
	}
}

var keyLike = regexp.MustCompile(`(?i)(\.key\b|\.pem\b|\.token\b|demo-data|/keys\b|\bkeys/|secrets)`)

func TestModulesAreCachedAndNoKeysAreCopied(t *testing.T) {
	for _, f := range dockerfiles(t) {
		for _, st := range parseDockerfile(t, f) {
			copiedMod, downloaded, copiedAll := -1, -1, -1
			for i, in := range st.ins {
				switch in.cmd {
				case "ADD":
					t.Errorf("%s:%d: ADD (use COPY; ADD fetches URLs and unpacks archives)", f, in.line)
				case "COPY":
					if keyLike.MatchString(in.args) {
						t.Errorf("%s:%d: COPY %s copies keys or secrets into the image", f, in.line, in.args)
					}
					fields := strings.Fields(in.args)
					if slices.Contains(fields, "go.mod") && slices.Contains(fields, "go.sum") {
						copiedMod = i
					}
					if len(fields) >= 2 && fields[len(fields)-2] == "." && !strings.HasPrefix(fields[0], "--from") {
						copiedAll = i
					}
				case "RUN":
					if strings.Contains(in.args, "go mod download") {
						downloaded = i
					}
				}
			}
			if copiedAll < 0 {
				continue // a runtime stage
			}
			if copiedMod < 0 || downloaded < 0 || !(copiedMod < downloaded && downloaded < copiedAll) {
				t.Errorf("%s stage %s: want COPY go.mod go.sum, RUN go mod download, then COPY . . (module cache layer)", f, st.from)
			}
		}
	}
}

// debianRelease maps an image to its Debian major release: golang images
// name the suite, debian images the version.
func debianRelease(image string) string {
	suites := map[string]string{"bookworm": "12", "trixie": "13", "bullseye": "11"}
	for suite, v := range suites {
		if strings.Contains(image, suite) {
			return v
		}
	}
	if m := regexp.MustCompile(`^debian:(\d+)`).FindStringSubmatch(image); m != nil {
		return m[1]
	}
	return ""
}

func TestRunnerBuilderAndRuntimeShareGlibc(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile.runnerd")
	build, runtime := stages[0], stages[len(stages)-1]
	b, r := debianRelease(build.from), debianRelease(runtime.from)
	if b == "" || r == "" || b != r {
		t.Errorf("runnerd builds on %s (Debian %q) and runs on %s (Debian %q): cgo links glibc, use one release",
			build.from, b, runtime.from, r)
	}
	for _, in := range build.ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "./runnerd") && strings.Contains(in.args, "CGO_ENABLED=0") {
			t.Errorf("Dockerfile.runnerd:%d: runnerd needs cgo (wasmtime)", in.line)
		}
	}
	if strings.Contains(runtime.from, "static") || strings.Contains(runtime.from, "alpine") || runtime.from == "scratch" {
		t.Errorf("runnerd runtime %s has no glibc", runtime.from)
	}
}

func TestGatewayHasWritableCaddyDirectories(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile.gateway")
	final := stages[len(stages)-1]
	env := map[string]string{}
	for _, in := range final.ins {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	user, _, _ := strings.Cut(finalUser(final), ":")
	for _, k := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME"} {
		dir := env[k]
		if dir == "" {
			t.Errorf("Dockerfile.gateway: ENV %s not set (Caddy falls back to $HOME/.local, \"mkdir /.local: permission denied\")", k)
			continue
		}
		if dir == "/tmp" {
			continue
		}
		owned := slices.ContainsFunc(final.ins, func(in instruction) bool {
			return in.cmd == "COPY" && strings.Contains(in.args, "--chown="+user) && strings.HasSuffix(in.args, " "+dir)
		})
		if !owned {
			t.Errorf("Dockerfile.gateway: %s=%s is not created owned by the runtime user %s", k, dir, user)
		}
	}
}

func TestDockerignoreKeepsSecretsAndStateOut(t *testing.T) {
	data, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatalf(".dockerignore at the repository root: %v", err)
	}
	var entries []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries = append(entries, strings.TrimSuffix(l, "/"))
		}
	}
	for _, want := range []string{".git", "bin", "demo-data", "test-artifacts", "**/node_modules", "**/keys", "**/*.key"} {
		if !slices.Contains(entries, want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
	for _, e := range entries {
		if strings.HasPrefix(e, "!") {
			t.Errorf(".dockerignore re-includes %q", e)
		}
	}
}
