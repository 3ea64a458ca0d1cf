package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "manifest.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compiling schema: %v", err)
	}
	return s
}

func schemaValidate(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return s.Validate(v)
}

func TestSchemaIsDraft2020(t *testing.T) {
	var doc struct {
		Schema string `json:"$schema"`
	}
	if err := json.Unmarshal(Schema(), &doc); err != nil || doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("$schema = %q, %v", doc.Schema, err)
	}
}

// TestExamplesValidateUnderSchemaAndParse checks that the SPEC §4 example and
// the sample manifests are accepted by both the schema and Parse.
func TestExamplesValidateUnderSchemaAndParse(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("testdata/valid/*.json")
	files = append(files, "testdata/spec-example.json")
	// The repository's own example extensions and the extctl scaffold.
	examples, _ := filepath.Glob("../../examples/*/manifest.json")
	if len(examples) < 2 {
		t.Fatalf("expected the example extensions' manifests, found %v", examples)
	}
	files = append(files, examples...)
	if len(files) < 6 {
		t.Fatalf("expected at least 4 valid examples, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemaValidate(t, s, data); err != nil {
				t.Errorf("schema rejects %s: %v", f, err)
			}
			if _, err := Parse(data, Options{}); err != nil {
				t.Errorf("Parse rejects %s: %v", f, err)
			}
		})
	}
}

// TestInvalidExamplesFailSchemaAndParse checks that each invalid sample is
// rejected by both the schema and Parse.
func TestInvalidExamplesFailSchemaAndParse(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("testdata/invalid/*.json")
	if len(files) < 5 {
		t.Fatalf("expected several invalid examples, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemaValidate(t, s, data); err == nil {
				t.Errorf("schema accepts %s", f)
			}
			if _, err := Parse(data, Options{}); err == nil {
				t.Errorf("Parse accepts %s", f)
			}
		})
	}
}

// TestSchemaAgreesWithParseOnSyntax runs the syntax rules the schema can
// express through both validators.
func TestSchemaAgreesWithParseOnSyntax(t *testing.T) {
	s := compileSchema(t)
	set := func(key string, v any) func(m map[string]any) { return func(m map[string]any) { m[key] = v } }
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		valid  bool
	}{
		{"spec example", func(map[string]any) {}, true},
		{"cap: prefix", set("capabilities", []any{"cap:http.fetch", "user.read"}), true},
		{"unknown capability", set("capabilities", []any{"cap:ui.proxy"}), false},
		{"prerelease version", set("version", "1.0.0-rc.1+b.2"), true},
		{"leading zero version", set("version", "1.02.0"), false},
		{"wasm runtime", set("runtime", "wasm@1"), true},
		{"other runtime", set("runtime", "wasm@2"), false},
		{"single-label name", set("name", "acme"), false},
		{"uppercase name", set("name", "com.Acme.x"), false},
		{"long name", set("name", "a."+strings.Repeat("b", 127)), false},
		{"empty publisher", set("publisher", ""), false},
		{"blank publisher", set("publisher", "   "), false},
		{"hidden sbom", set("sbom", ".sbom"), false},
		{"absolute sbom", set("sbom", "/sbom"), false},
		{"dotdot sbom", set("sbom", "a/../sbom"), false},
		{"backslash sbom", set("sbom", `a\sbom`), false},
		{"control char sbom", set("sbom", "a\u0001b"), false},
		{"asset outside ui", set("assets", []any{"dist/*"}), false},
		{"asset globs", set("assets", []any{"ui/**/*", "ui/*.{css}", "ui/img/[a-z]*.png"}), true},
		{"asset climbing out of ui", set("assets", []any{"ui/../dist/*"}), false},
		{"asset with empty segment", set("assets", []any{"ui//x"}), false},
		{"asset ui alone", set("assets", []any{"ui/"}), false},
		{"entry with export", set("entry", "dist/main.wasm#run"), true},
		{"entry with bad export", set("entry", "dist/main.wasm#1"), false},
		{"entry with empty export", set("entry", "dist/main.wasm#"), false},
		{"ui entry outside ui", func(m map[string]any) { obj(m, "ui")["entry"] = "index.html" }, false},
		{"ui hooks", func(m map[string]any) {
			obj(m, "ui")["hooks"] = map[string]any{"appMenu": map[string]any{"label": "A"}, "clientPortalMenu": map[string]any{"label": "B"}}
		}, true},
		{"blank hook label", func(m map[string]any) {
			obj(m, "ui")["hooks"] = map[string]any{"appMenu": map[string]any{"label": " "}}
		}, false},
		{"root endpoint", func(m map[string]any) { endpoint(m, 0)["path"] = "/" }, true},
		{"colon in literal", func(m map[string]any) { endpoint(m, 0)["path"] = "/v1/items:batch" }, true},
		{"dotted literal", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/.well-known/..x" }, true},
		{"dot segment", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/./b" }, false},
		{"dotdot segment", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/.." }, false},
		{"trailing slash", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/" }, false},
		{"empty segment", func(m map[string]any) { endpoint(m, 0)["path"] = "/a//b" }, false},
		{"bad param", func(m map[string]any) { endpoint(m, 0)["path"] = "/a/:9" }, false},
		{"percent in literal", func(m map[string]any) { endpoint(m, 0)["path"] = "/a%20" }, false},
		{"HEAD method", func(m map[string]any) { endpoint(m, 0)["method"] = "HEAD" }, false},
		{"timeout 0", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 0 }, false},
		{"timeout max", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 300000 }, true},
		{"timeout float integral", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 1000.0 }, true},
		{"timeout fractional", func(m map[string]any) { endpoint(m, 2)["timeout_ms"] = 1.5 }, false},
		{"bad topic", func(m map[string]any) { event(m, 0)["topic"] = "Ticket" }, false},
		{"topic of 256 bytes", func(m map[string]any) { event(m, 0)["topic"] = strings.Repeat("t", 256) }, true},
		{"topic over 256 bytes", func(m map[string]any) { event(m, 0)["topic"] = strings.Repeat("t", 257) }, false},
		{"unknown nested key", func(m map[string]any) { event(m, 0)["x"] = 1 }, false},
		{"precompiled bad target", set("precompiled", map[string]any{"a b": "precompiled/x"}), false},
		{"null name", set("name", nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := readSpecExample(t)
			tt.mutate(m)
			data := mustMarshal(t, m)
			schemaErr := schemaValidate(t, s, data)
			_, parseErr := Parse(data, Options{})
			if (schemaErr == nil) != tt.valid {
				t.Errorf("schema valid = %v, want %v (%v)", schemaErr == nil, tt.valid, schemaErr)
			}
			if (parseErr == nil) != tt.valid {
				t.Errorf("Parse valid = %v, want %v (%v)", parseErr == nil, tt.valid, parseErr)
			}
		})
	}
}
