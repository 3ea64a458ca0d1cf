package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// specBundle lists the files of a bundle that the SPEC §4 example fits.
var specBundle = fileSet(
	"manifest.json",
	"ui/index.html", "ui/settings.html", "ui/app.js",
	"dist/main.wasm",
	"precompiled/x86_64-linux-gnu/main.cwasm",
	"sbom.spdx.json",
)

func fileSet(names ...string) func(string) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(p string) bool { return set[p] }
}

func readSpecExample(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func obj(v any, key string) map[string]any { return v.(map[string]any)[key].(map[string]any) }
func endpoint(m map[string]any, i int) map[string]any {
	return obj(m, "api")["endpoints"].([]any)[i].(map[string]any)
}
func addEndpoint(m map[string]any, method, path, handler string) {
	api := obj(m, "api")
	api["endpoints"] = append(api["endpoints"].([]any), map[string]any{"method": method, "path": path, "handler": handler})
}
func event(m map[string]any, i int) map[string]any {
	return m["events"].([]any)[i].(map[string]any)
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func issuesOf(t testing.TB, err error) []Issue {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if len(ve.Issues) == 0 {
		t.Fatal("ValidationError without issues")
	}
	return ve.Issues
}

func hasIssue(issues []Issue, path, fragment string) bool {
	for _, is := range issues {
		if is.Path == path && strings.Contains(is.Message, fragment) {
			return true
		}
	}
	return false
}

func TestSpecExampleParses(t *testing.T) {
	data, err := os.ReadFile("testdata/spec-example.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data, Options{Files: specBundle})
	if err != nil {
		t.Fatalf("spec example: %v", err)
	}
	if m.Name != "com.acme.agreements" || len(m.API.Endpoints) != 3 || m.API.Endpoints[2].TimeoutMS != 15000 ||
		m.Precompiled["x86_64-linux-gnu"] != "precompiled/x86_64-linux-gnu/main.cwasm" || m.Events[0].Topic != "ticket.created" {
		t.Fatalf("unexpected manifest: %+v", m)
	}
}

// TestRules provokes every §4 rule once and asserts the JSON path and the
// message.
func TestRules(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct {
		name     string
		mutate   func(m map[string]any)
		opts     Options // Files defaults to specBundle
		path     string
		fragment string
	}{
		// name
		{"name is required", func(m map[string]any) { delete(m, "name") }, Options{}, "$.name", "is required"},
		{"name needs two labels", func(m map[string]any) { m["name"] = "agreements" }, Options{}, "$.name", "reverse-domain"},
		{"name must be lowercase", func(m map[string]any) { m["name"] = "com.Acme.agreements" }, Options{}, "$.name", "lowercase"},
		{"name label cannot start with a hyphen", func(m map[string]any) { m["name"] = "com.-acme.x" }, Options{}, "$.name", "reverse-domain"},
		{"name label cannot end with a hyphen", func(m map[string]any) { m["name"] = "com.acme-.x" }, Options{}, "$.name", "reverse-domain"},
		{"name has no empty labels", func(m map[string]any) { m["name"] = "com..acme" }, Options{}, "$.name", "reverse-domain"},
		{"name has no underscore", func(m map[string]any) { m["name"] = "com.acme_x.y" }, Options{}, "$.name", "reverse-domain"},
		{"name at most 128 characters", func(m map[string]any) { m["name"] = "com." + long + "." + long + ".abcdefgh" }, Options{}, "$.name", "at most 128"},
		{"name must be a string", func(m map[string]any) { m["name"] = nil }, Options{}, "$.name", "must be a string, not null"},
		// publisher
		{"publisher is required", func(m map[string]any) { delete(m, "publisher") }, Options{}, "$.publisher", "is required"},
		{"publisher must not be blank", func(m map[string]any) { m["publisher"] = "  " }, Options{}, "$.publisher", "must not be blank"},
		{"publisher at most 128 characters", func(m map[string]any) { m["publisher"] = strings.Repeat("é", 129) }, Options{}, "$.publisher", "at most 128"},
		{"publisher has no control characters", func(m map[string]any) { m["publisher"] = "Acme\nInc" }, Options{}, "$.publisher", "control"},
		{"publisher must be a string", func(m map[string]any) { m["publisher"] = 7 }, Options{}, "$.publisher", "must be a string, not a number"},
		// version
		{"version is required", func(m map[string]any) { delete(m, "version") }, Options{}, "$.version", "is required"},
		{"version needs three numbers", func(m map[string]any) { m["version"] = "1.2" }, Options{}, "$.version", "not a semantic version"},
		{"version has no leading zeros", func(m map[string]any) { m["version"] = "01.2.3" }, Options{}, "$.version", "not a semantic version"},
		{"version has no v prefix", func(m map[string]any) { m["version"] = "v1.2.3" }, Options{}, "$.version", "not a semantic version"},
		{"version numeric prerelease has no leading zero", func(m map[string]any) { m["version"] = "1.2.3-01" }, Options{}, "$.version", "not a semantic version"},
		{"version prerelease has no empty identifier", func(m map[string]any) { m["version"] = "1.2.3-a..b" }, Options{}, "$.version", "not a semantic version"},
		{"version has no surrounding spaces", func(m map[string]any) { m["version"] = " 1.2.3" }, Options{}, "$.version", "not a semantic version"},
		// runtime
		{"runtime is required", func(m map[string]any) { delete(m, "runtime") }, Options{}, "$.runtime", "is required"},
		{"runtime must be a known ABI", func(m map[string]any) { m["runtime"] = "wasm32-wasi@1" }, Options{}, "$.runtime", "not supported"},
		// capabilities
		{"unknown capability is not provided", func(m map[string]any) { m["capabilities"] = []any{"http.fetch", "fs.write"} }, Options{}, "$.capabilities[1]", `capability "fs.write" is not provided by this platform`},
		{"unknown cap: capability is named as written", func(m map[string]any) { m["capabilities"] = []any{"cap:ui.proxy"} }, Options{}, "$.capabilities[0]", `capability "cap:ui.proxy" is not provided by this platform`},
		{"capabilities are case-sensitive", func(m map[string]any) { m["capabilities"] = []any{"HTTP.fetch"} }, Options{}, "$.capabilities[0]", "not provided by this platform"},
		{"capabilities must be strings", func(m map[string]any) { m["capabilities"] = []any{true} }, Options{}, "$.capabilities[0]", "must be a string"},
		{"capabilities must be an array", func(m map[string]any) { m["capabilities"] = "http.fetch" }, Options{}, "$.capabilities", "must be an array"},
		// ui
		{"ui.type must be iframe", func(m map[string]any) { obj(m, "ui")["type"] = "webview" }, Options{}, "$.ui.type", `must be "iframe"`},
		{"ui.type is required", func(m map[string]any) { delete(obj(m, "ui"), "type") }, Options{}, "$.ui.type", "is required"},
		{"ui.entry must be under ui/", func(m map[string]any) { obj(m, "ui")["entry"] = "index.html" }, Options{}, "$.ui.entry", "must be under ui/"},
		{"ui.entry must exist", func(m map[string]any) { obj(m, "ui")["entry"] = "ui/missing.html" }, Options{}, "$.ui.entry", "not in the bundle"},
		{"ui.entry must be clean", func(m map[string]any) { obj(m, "ui")["entry"] = "ui/../index.html" }, Options{}, "$.ui.entry", `".."`},
		{"ui hook label must not be blank", func(m map[string]any) {
			obj(m, "ui")["hooks"] = map[string]any{"appMenu": map[string]any{"label": " "}}
		}, Options{}, "$.ui.hooks.appMenu.label", "must not be blank"},
		{"ui hook label is required", func(m map[string]any) {
			obj(m, "ui")["hooks"] = map[string]any{"clientPortalMenu": map[string]any{}}
		}, Options{}, "$.ui.hooks.clientPortalMenu.label", "is required"},
		{"unknown ui hook is an issue", func(m map[string]any) {
			obj(m, "ui")["hooks"] = map[string]any{"sidebar": map[string]any{"label": "x"}}
		}, Options{}, "$.ui.hooks.sidebar", `unknown field "sidebar"`},
		{"ui route iframePath must exist", func(m map[string]any) {
			obj(m, "ui")["routes"] = []any{map[string]any{"path": "/settings", "iframePath": "ui/nope.html"}}
		}, Options{}, "$.ui.routes[0].iframePath", "not in the bundle"},
		{"ui route iframePath must be under ui/", func(m map[string]any) {
			obj(m, "ui")["routes"] = []any{map[string]any{"path": "/settings", "iframePath": "sbom.spdx.json"}}
		}, Options{}, "$.ui.routes[0].iframePath", "must be under ui/"},
		{"ui route path starts with a slash", func(m map[string]any) {
			obj(m, "ui")["routes"] = []any{map[string]any{"path": "settings", "iframePath": "ui/settings.html"}}
		}, Options{}, "$.ui.routes[0].path", `must start with "/"`},
		{"ui route paths are unique", func(m map[string]any) {
			r := map[string]any{"path": "/settings", "iframePath": "ui/settings.html"}
			obj(m, "ui")["routes"] = []any{r, r}
		}, Options{}, "$.ui.routes[1].path", "already defined at $.ui.routes[0]"},
		// api.endpoints
		{"api.endpoints is required", func(m map[string]any) { m["api"] = map[string]any{} }, Options{}, "$.api.endpoints", "is required"},
		{"endpoint method must be allowed", func(m map[string]any) { endpoint(m, 0)["method"] = "HEAD" }, Options{}, "$.api.endpoints[0].method", "must be one of GET, POST, PUT, PATCH, DELETE"},
		{"endpoint method is uppercase", func(m map[string]any) { endpoint(m, 0)["method"] = "get" }, Options{}, "$.api.endpoints[0].method", "not allowed"},
		{"endpoint path starts with a slash", func(m map[string]any) { endpoint(m, 0)["path"] = "agreements" }, Options{}, "$.api.endpoints[0].path", `must start with "/"`},
		{"endpoint path has no empty segment", func(m map[string]any) { endpoint(m, 0)["path"] = "/a//b" }, Options{}, "$.api.endpoints[0].path", "empty segment"},
		{"endpoint path has no trailing slash", func(m map[string]any) { endpoint(m, 0)["path"] = "/agreements/" }, Options{}, "$.api.endpoints[0].path", "empty segment"},
		{"endpoint param is an identifier", func(m map[string]any) { endpoint(m, 1)["path"] = "/agreements/:1d" }, Options{}, "$.api.endpoints[1].path", "identifier"},
		{"endpoint param needs a name", func(m map[string]any) { endpoint(m, 1)["path"] = "/agreements/:" }, Options{}, "$.api.endpoints[1].path", "identifier"},
		{"endpoint params are unique", func(m map[string]any) { endpoint(m, 1)["path"] = "/agreements/:id/:id" }, Options{}, "$.api.endpoints[1].path", "appears twice"},
		{"endpoint literal has no spaces", func(m map[string]any) { endpoint(m, 0)["path"] = "/agree ments" }, Options{}, "$.api.endpoints[0].path", "literal segment"},
		{"endpoint literal has no percent-encoding", func(m map[string]any) { endpoint(m, 0)["path"] = "/a%20b" }, Options{}, "$.api.endpoints[0].path", "literal segment"},
		{"endpoint literal is not a dot segment", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/../b" }, Options{}, "$.api.endpoints[0].path", `".."`},
		{"endpoint (method, path) is unique", func(m map[string]any) { addEndpoint(m, "GET", "/agreements", "dist/x") }, Options{}, "$.api.endpoints[3].path", "duplicate endpoint GET /agreements (also $.api.endpoints[0])"},
		{"patterns differing only in param names are ambiguous", func(m map[string]any) { addEndpoint(m, "GET", "/agreements/:key", "dist/x") }, Options{}, "$.api.endpoints[3].path", "ambiguous"},
		{"timeout_ms is at least 1", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 0 }, Options{}, "$.api.endpoints[2].timeout_ms", "between 1 and 300000"},
		{"timeout_ms is not negative", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = -5 }, Options{}, "$.api.endpoints[2].timeout_ms", "between 1 and 300000"},
		{"timeout_ms is at most the default platform max", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 300001 }, Options{}, "$.api.endpoints[2].timeout_ms", "between 1 and 300000"},
		{"timeout_ms is at most the configured platform max", func(m map[string]any) {}, Options{MaxTimeoutMS: 10000}, "$.api.endpoints[2].timeout_ms", "between 1 and 10000"},
		{"timeout_ms is an integer", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 1.5 }, Options{}, "$.api.endpoints[2].timeout_ms", "must be an integer"},
		{"timeout_ms is a number", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = "15000" }, Options{}, "$.api.endpoints[2].timeout_ms", "must be an integer, not a string"},
		// handler
		{"handler is required", func(m map[string]any) { delete(endpoint(m, 0), "handler") }, Options{}, "$.api.endpoints[0].handler", "is required"},
		{"handler module or entry must exist", func(m map[string]any) { delete(m, "entry") }, Options{}, "$.api.endpoints[0].handler", `module "dist/handlers/list.wasm" is not in the bundle and there is no entry module`},
		{"handler export is an identifier", func(m map[string]any) { endpoint(m, 0)["handler"] = "dist/main#list-all" }, Options{}, "$.api.endpoints[0].handler", "must be an identifier"},
		{"handler export is not empty", func(m map[string]any) { endpoint(m, 0)["handler"] = "dist/main#" }, Options{}, "$.api.endpoints[0].handler", "must be an identifier"},
		{"handler path is relative", func(m map[string]any) { endpoint(m, 0)["handler"] = "/dist/main" }, Options{}, "$.api.endpoints[0].handler", "must be relative"},
		{"handler path is clean", func(m map[string]any) { endpoint(m, 0)["handler"] = "dist/../main" }, Options{}, "$.api.endpoints[0].handler", `".."`},
		{"handler path has no backslash", func(m map[string]any) { endpoint(m, 0)["handler"] = `dist\main` }, Options{}, "$.api.endpoints[0].handler", `"\"`},
		// events
		{"event topic syntax", func(m map[string]any) { event(m, 0)["topic"] = "Ticket.Created" }, Options{}, "$.events[0].topic", "[a-z0-9_.-]+"},
		{"event topic is at most 256 bytes", func(m map[string]any) { event(m, 0)["topic"] = strings.Repeat("t", 257) }, Options{}, "$.events[0].topic", "at most 256 bytes"},
		{"event topic is required", func(m map[string]any) { delete(event(m, 0), "topic") }, Options{}, "$.events[0].topic", "is required"},
		{"event handler module or entry must exist", func(m map[string]any) { delete(m, "entry") }, Options{}, "$.events[0].handler", "no entry module"},
		{"event handler export is an identifier", func(m map[string]any) { event(m, 0)["handler"] = "dist/main#1x" }, Options{}, "$.events[0].handler", "must be an identifier"},
		// entry
		{"entry module must exist", func(m map[string]any) { m["entry"] = "dist/other.wasm" }, Options{}, "$.entry", `module "dist/other.wasm" is not in the bundle`},
		{"entry without .wasm gets it appended", func(m map[string]any) { m["entry"] = "dist/other" }, Options{}, "$.entry", `"dist/other.wasm"`},
		{"entry export is an identifier", func(m map[string]any) { m["entry"] = "dist/main.wasm#a.b" }, Options{}, "$.entry", "must be an identifier"},
		{"entry is not empty", func(m map[string]any) { m["entry"] = "" }, Options{}, "$.entry", "must not be empty"},
		// precompiled, sbom
		{"precompiled path must exist", func(m map[string]any) {
			m["precompiled"] = map[string]any{"x86_64-linux-gnu": "precompiled/nope.cwasm"}
		}, Options{}, `$.precompiled["x86_64-linux-gnu"]`, "not in the bundle"},
		{"precompiled path must be clean", func(m map[string]any) {
			m["precompiled"] = map[string]any{"x86_64-linux-gnu": "./precompiled/main.cwasm"}
		}, Options{}, `$.precompiled["x86_64-linux-gnu"]`, `"."`},
		{"precompiled target name syntax", func(m map[string]any) {
			m["precompiled"] = map[string]any{"x86 64": "precompiled/x86_64-linux-gnu/main.cwasm"}
		}, Options{}, `$.precompiled["x86 64"]`, "target name"},
		{"precompiled must be an object", func(m map[string]any) { m["precompiled"] = []any{} }, Options{}, "$.precompiled", "must be an object, not an array"},
		{"sbom must exist", func(m map[string]any) { m["sbom"] = "sbom.json" }, Options{}, "$.sbom", `"sbom.json" is not in the bundle`},
		{"sbom must not be hidden", func(m map[string]any) { m["sbom"] = ".sbom.json" }, Options{}, "$.sbom", "hidden"},
		{"sbom must not be absolute", func(m map[string]any) { m["sbom"] = "/etc/passwd" }, Options{}, "$.sbom", "must be relative"},
		// assets
		{"asset glob must start with ui/", func(m map[string]any) { m["assets"] = []any{"ui/**/*", "**/*"} }, Options{}, "$.assets[1]", `must start with "ui/"`},
		{"asset glob cannot climb out of ui/", func(m map[string]any) { m["assets"] = []any{"ui/../dist/*"} }, Options{}, "$.assets[0]", `".."`},
		{"asset glob must be valid", func(m map[string]any) { m["assets"] = []any{"ui/[a-"} }, Options{}, "$.assets[0]", "not a valid glob"},
		{"asset glob ** is a whole segment", func(m map[string]any) { m["assets"] = []any{"ui/a**/x"} }, Options{}, "$.assets[0]", "whole segment"},
		{"asset glob with a wildcard first segment is rejected", func(m map[string]any) { m["assets"] = []any{"u*/x"} }, Options{}, "$.assets[0]", `must start with "ui/"`},
		// strict decoding
		{"unknown top-level key", func(m map[string]any) { m["capabilites"] = []any{} }, Options{}, "$.capabilites", `unknown field "capabilites"`},
		{"unknown key suggests the field it resembles", func(m map[string]any) { m["Entry"] = "dist/main.wasm" }, Options{}, "$.Entry", `unknown field "Entry" (did you mean "entry"?)`},
		{"unknown key without a close field has no suggestion", func(m map[string]any) { m["colour"] = "x" }, Options{}, "$.colour", `unknown field "colour"`},
		{"unknown key in an endpoint", func(m map[string]any) { endpoint(m, 0)["timeout"] = 5 }, Options{}, "$.api.endpoints[0].timeout", `unknown field "timeout"`},
		{"unknown key in ui", func(m map[string]any) { obj(m, "ui")["height"] = 5 }, Options{}, "$.ui.height", `unknown field "height"`},
		{"unknown key in api", func(m map[string]any) { obj(m, "api")["prefix"] = "/v1" }, Options{}, "$.api.prefix", `unknown field "prefix"`},
		{"unknown key in an event", func(m map[string]any) { event(m, 0)["filter"] = "x" }, Options{}, "$.events[0].filter", `unknown field "filter"`},
		{"ui must be an object", func(m map[string]any) { m["ui"] = "ui/index.html" }, Options{}, "$.ui", "must be an object, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := readSpecExample(t)
			tt.mutate(m)
			opts := tt.opts
			if opts.Files == nil {
				opts.Files = specBundle
			}
			_, err := Parse(mustMarshal(t, m), opts)
			if err == nil {
				t.Fatalf("Parse accepted the manifest, want issue at %s", tt.path)
			}
			issues := issuesOf(t, err)
			if !hasIssue(issues, tt.path, tt.fragment) {
				t.Fatalf("want issue at %s containing %q, got %v", tt.path, tt.fragment, issues)
			}
		})
	}
}

func TestRawInputRules(t *testing.T) {
	base := `"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1"`
	tests := []struct {
		name, input, path, fragment string
	}{
		{"duplicate keys are an issue", `{` + base + `,"name":"io.example.y"}`, "$.name", `duplicate key "name"`},
		{"duplicate nested keys are an issue", `{` + base + `,"ui":{"type":"iframe","entry":"ui/a.html","entry":"ui/b.html"}}`, "$.ui.entry", "duplicate key"},
		{"top level must be an object", `[]`, "$", "must be an object, not an array"},
		{"invalid JSON is reported", `{"name":`, "$", "invalid JSON"},
		{"trailing data is rejected", `{` + base + `} {}`, "$", "unexpected data after"},
		{"empty input is rejected", ``, "$", "invalid JSON"},
		{"timeout_ms beyond int range is out of range", `{` + base + `,"entry":"dist/main","api":{"endpoints":[{"method":"GET","path":"/","handler":"dist/main","timeout_ms":1e300}]}}`, "$.api.endpoints[0].timeout_ms", "between 1 and"},
		{"excessive nesting is rejected", `{` + base + `,"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "$", "nested deeper"},
		{"oversized manifest is rejected", `{` + base + `,"publisher":"` + strings.Repeat("x", MaxManifestBytes) + `"}`, "$", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.input), Options{})
			if err == nil {
				t.Fatal("Parse accepted the input")
			}
			if issues := issuesOf(t, err); !hasIssue(issues, tt.path, tt.fragment) {
				t.Fatalf("want issue at %s containing %q, got %v", tt.path, tt.fragment, issues)
			}
		})
	}
}

func TestAllIssuesAreReportedTogether(t *testing.T) {
	input := `{
	  "name": "Agreements",
	  "publisher": "",
	  "version": "1.2",
	  "runtime": "wasm@2",
	  "capabilities": ["cap:http.fetch", "fs.write"],
	  "ui": { "type": "iframe", "entry": "index.html" },
	  "api": { "endpoints": [
	    { "method": "GET", "path": "/a/:x", "handler": "dist/a" },
	    { "method": "GET", "path": "/a/:y", "handler": "dist/a", "timeout_ms": 0 },
	    { "method": "TRACE", "path": "a", "handler": "dist/a#-" }
	  ] },
	  "assets": ["dist/*"],
	  "colour": "blue"
	}`
	_, err := Parse([]byte(input), Options{})
	issues := issuesOf(t, err)
	want := []struct{ path, fragment string }{
		{"$.colour", "unknown field"},
		{"$.name", "reverse-domain"},
		{"$.publisher", "must not be blank"},
		{"$.version", "not a semantic version"},
		{"$.runtime", "not supported"},
		{"$.capabilities[1]", `"fs.write" is not provided by this platform`},
		{"$.ui.entry", "must be under ui/"},
		{"$.api.endpoints[1].path", "ambiguous"},
		{"$.api.endpoints[1].timeout_ms", "between 1 and"},
		{"$.api.endpoints[2].method", "not allowed"},
		{"$.api.endpoints[2].path", `must start with "/"`},
		{"$.api.endpoints[2].handler", "must be an identifier"},
		{"$.assets[0]", `must start with "ui/"`},
	}
	for _, w := range want {
		if !hasIssue(issues, w.path, w.fragment) {
			t.Errorf("missing issue at %s containing %q", w.path, w.fragment)
		}
	}
	if len(issues) != len(want) {
		t.Errorf("got %d issues, want %d: %v", len(issues), len(want), issues)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid manifest: ") || !strings.Contains(msg, "$.assets[0]: ") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestTypoSuggestion(t *testing.T) {
	_, err := Parse([]byte(`{"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1","capabilites":[],"zzz":1}`), Options{})
	issues := issuesOf(t, err)
	if !hasIssue(issues, "$.capabilites", `(did you mean "capabilities"?)`) {
		t.Fatalf("no suggestion: %v", issues)
	}
	if hasIssue(issues, "$.zzz", "did you mean") {
		t.Fatalf("suggestion for an unrelated key: %v", issues)
	}
}

func TestTypeErrorIsReportedOnce(t *testing.T) {
	_, err := Parse([]byte(`{"name":5,"publisher":"P","version":"1.0.0","runtime":"wasm@1"}`), Options{})
	issues := issuesOf(t, err)
	if len(issues) != 1 || issues[0].Path != "$.name" {
		t.Fatalf("want exactly one issue at $.name, got %v", issues)
	}
}

func TestCapabilitiesAreNormalised(t *testing.T) {
	in := `{"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1",
		"capabilities":["cap:http.fetch","http.fetch","cap:log.emit","user.read","cap:user.read"]}`
	m, err := Parse([]byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http.fetch", "log.emit", "user.read"}
	if strings.Join(m.Capabilities, ",") != strings.Join(want, ",") {
		t.Fatalf("capabilities = %v, want %v", m.Capabilities, want)
	}
}

func TestEntryDispatchesHandlersWithoutOwnModule(t *testing.T) {
	data, _ := os.ReadFile("testdata/spec-example.json")
	m, err := Parse(data, Options{Files: specBundle})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.HandlerTarget("dist/handlers/list", specBundle)
	if err != nil || got != (HandlerRef{Module: "dist/main.wasm", Export: "handler"}) {
		t.Fatalf("HandlerTarget falls back to entry: got %+v, %v", got, err)
	}
	own := fileSet("dist/main.wasm", "dist/handlers/list.wasm")
	got, err = m.HandlerTarget("dist/handlers/list#list", own)
	if err != nil || got != (HandlerRef{Module: "dist/handlers/list.wasm", Export: "list"}) {
		t.Fatalf("HandlerTarget prefers the handler's module: got %+v, %v", got, err)
	}
	if _, err := m.HandlerTarget("dist/handlers/list", fileSet()); err == nil {
		t.Fatal("HandlerTarget with neither module present succeeded")
	}
	m.Entry = "dist/main.wasm#dispatch"
	got, _ = m.HandlerTarget("dist/x", specBundle)
	if got.Export != "dispatch" {
		t.Fatalf("entry export is used: got %+v", got)
	}
	m.Entry = ""
	if _, err := m.HandlerTarget("dist/x", specBundle); err == nil {
		t.Fatal("HandlerTarget without entry and module succeeded")
	}
}

func TestParseHandlerRef(t *testing.T) {
	tests := []struct {
		name, in string
		want     HandlerRef
		wantErr  bool
	}{
		{"path without .wasm gets it appended", "dist/handlers/get", HandlerRef{"dist/handlers/get.wasm", "handler"}, false},
		{"path with .wasm is kept", "dist/main.wasm", HandlerRef{"dist/main.wasm", "handler"}, false},
		{"export after #", "dist/main#list_all", HandlerRef{"dist/main.wasm", "list_all"}, false},
		{"empty is rejected", "", HandlerRef{}, true},
		{"only an export is rejected", "#handler", HandlerRef{}, true},
		{"second # is rejected", "dist/a#b#c", HandlerRef{}, true},
		{"export starting with a digit is rejected", "dist/a#9", HandlerRef{}, true},
		{"hidden segment is rejected", "dist/.hidden/a", HandlerRef{}, true},
		{"trailing slash is rejected", "dist/", HandlerRef{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHandlerRef(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseHandlerRef(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"com.acme.agreements", true}, {"a.b", true}, {"com.acme-corp.x1", true}, {"0.9", true},
		{"", false}, {"acme", false}, {"com.", false}, {".com", false}, {"com..a", false},
		{"com.Acme", false}, {"com.-a", false}, {"com.a-", false}, {"com.a_b", false}, {"com.a b", false},
		{"com/acme", false}, {strings.Repeat("a.", 64) + "b", false}, {strings.Repeat("a.", 63) + "bc", true},
	} {
		if got := ValidName(tt.name); got != tt.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestValidVersionIsSemver2(t *testing.T) {
	for _, v := range []string{"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
		"1.0.0-alpha+001", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-x-y-z.--", "1.0.0+0.build.1-rc.10000aaa-kk-0.1"} {
		if !ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = false", v)
		}
	}
	for _, v := range []string{"1", "1.2", "1.2.3.4", "01.1.1", "1.01.1", "1.1.01", "1.2.3-0123", "1.2.3-", "1.2.3+",
		"1.2.3-+", "1.2.3-alpha..1", "+invalid", "-invalid", "v1.2.3", "1.2.3 ", "1.2.3-é", "1.2-SNAPSHOT", "1.2.*"} {
		if ValidVersion(v) {
			t.Errorf("ValidVersion(%q) = true", v)
		}
	}
}

func TestNormalizeCapability(t *testing.T) {
	for _, c := range KnownCapabilities {
		if n, ok := NormalizeCapability("cap:" + c); !ok || n != c {
			t.Errorf("NormalizeCapability(cap:%s) = %q, %v", c, n, ok)
		}
		if n, ok := NormalizeCapability(c); !ok || n != c {
			t.Errorf("NormalizeCapability(%s) = %q, %v", c, n, ok)
		}
	}
	if n, ok := NormalizeCapability("cap:ui.proxy"); ok || n != "ui.proxy" {
		t.Errorf("unknown capability: %q, %v", n, ok)
	}
	for _, c := range AlwaysGranted {
		if _, ok := NormalizeCapability(c); !ok {
			t.Errorf("always-granted %q is not known", c)
		}
	}
}

func TestValidateAcceptsBuiltManifest(t *testing.T) {
	m := &Manifest{Name: "io.example.x", Publisher: "P", Version: "1.0.0", Runtime: "wasm@1",
		Capabilities: []string{"cap:http.fetch"}, Entry: "dist/main.wasm",
		API: &API{Endpoints: []Endpoint{{Method: "GET", Path: "/x", Handler: "dist/x"}}}}
	if err := m.Validate(Options{Files: fileSet("dist/main.wasm")}); err != nil {
		t.Fatal(err)
	}
	if m.Capabilities[0] != "cap:http.fetch" {
		t.Fatal("Validate modified the manifest")
	}
	m.Capabilities = append(m.Capabilities, "net.raw")
	if !hasIssue(issuesOf(t, m.Validate(Options{})), "$.capabilities[1]", "not provided by this platform") {
		t.Fatal("Validate missed an unknown capability")
	}
}

func TestExistenceChecksSkippedWithoutFiles(t *testing.T) {
	m := readSpecExample(t)
	m["sbom"] = "missing.json"
	delete(m, "entry")
	if _, err := Parse(mustMarshal(t, m), Options{}); err != nil {
		t.Fatalf("without Files, missing files are not issues: %v", err)
	}
}

func TestIssuesAreBounded(t *testing.T) {
	caps := strings.Repeat(`"x",`, 499)
	in := `{"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1","capabilities":[` + caps + `"y"]}`
	_, err := Parse([]byte(in), Options{})
	issues := issuesOf(t, err)
	if len(issues) != MaxIssues || !strings.Contains(issues[MaxIssues-1].Message, "401 more issues not shown") {
		t.Fatalf("got %d issues, last %v", len(issues), issues[len(issues)-1])
	}
}

func TestListsAreBounded(t *testing.T) {
	caps := strings.Repeat(`"http.fetch",`, MaxItems)
	in := `{"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1","capabilities":[` + caps + `"log.emit"]}`
	_, err := Parse([]byte(in), Options{})
	if !hasIssue(issuesOf(t, err), "$.capabilities", "at most 1000 items") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkParseWorstCase(b *testing.B) {
	// Near the size limit, every element an issue of its own.
	items := strings.Repeat(`1,`, (MaxManifestBytes-200)/2)
	in := []byte(`{"name":"io.example.x","publisher":"P","version":"1.0.0","runtime":"wasm@1","capabilities":[` + items + `1]}`)
	for b.Loop() {
		Parse(in, Options{})
	}
}

func BenchmarkParseSpecExample(b *testing.B) {
	data, _ := os.ReadFile("testdata/spec-example.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
