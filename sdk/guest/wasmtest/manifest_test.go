package wasmtest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/extedge/extedge/internal/manifest"
)

// The hello example's manifest must pass the platform's validation once
// build.sh has produced dist/hello.wasm, and its handler must resolve to
// that module's handler export.
func TestHelloManifestValidates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(moduleRoot(t), "examples", "hello", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := func(p string) bool { return p == "dist/hello.wasm" }
	m, err := manifest.Parse(data, manifest.Options{Files: files})
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Name != "com.example.hello" || m.Runtime != "wasm@1" {
		t.Fatalf("manifest %+v", m)
	}
	ref, err := m.HandlerTarget(m.API.Endpoints[0].Handler, files)
	if err != nil {
		t.Fatal(err)
	}
	if want := (manifest.HandlerRef{Module: "dist/hello.wasm", Export: "handler"}); ref != want {
		t.Fatalf("handler resolves to %+v, want %+v", ref, want)
	}
}
