package wasmtest

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/manifest"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest"
)

// TestExampleManifestsValidate: the AssemblyScript examples' manifests pass
// the platform's validation once `npm run build` has produced their module.
func TestExampleManifestsValidate(t *testing.T) {
	for dir, module := range map[string]string{"examples/hello-as": "dist/hello.wasm", "examples/kv-as": "dist/main.wasm"} {
		data, err := os.ReadFile(repoPath(t, dir+"/manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		files := func(p string) bool { return p == module }
		m, err := manifest.Parse(data, manifest.Options{Files: files})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, ep := range m.API.Endpoints {
			ref, err := m.HandlerTarget(ep.Handler, files)
			if err != nil || ref.Module != module {
				t.Errorf("%s: %s resolves to %+v, %v", dir, ep.Handler, ref, err)
			}
		}
	}
}

// TestKVExample runs examples/kv-as as the gateway calls it: the endpoint's
// manifest handler and pattern, with the params filled in.
func TestKVExample(t *testing.T) {
	h := runnertest.NewHost(t, runnertest.Config{})
	m := h.Compile(t, testenv.AssemblyScript(t, repoPath(t, "examples/kv-as")))
	call := func(method, pattern, handler, key, body string, out any) *runnertest.Call {
		t.Helper()
		path := "/docs"
		params := map[string]string{}
		if key != "" {
			path += "/" + key
			params["key"] = key
		}
		env := &execapi.Request{
			Context:      execapi.Context{RequestID: "r", TenantID: "t", InstallID: "i"},
			HTTP:         execapi.HTTPRequest{Method: method, Path: path, Query: map[string]string{}, Headers: map[string]string{}},
			Endpoint:     execapi.Endpoint{Method: method, Path: pattern, Handler: handler, Params: params},
			Capabilities: []string{"storage.kv"},
		}
		if body != "" {
			env.HTTP.Body = []byte(body)
		}
		c := h.Run(t, m, env)
		if c.Err != nil {
			t.Fatalf("%s %s: %v", method, path, c.Err)
		}
		if out != nil {
			if err := json.Unmarshal(c.Response.Body, out); err != nil {
				t.Fatalf("%s %s: %q", method, path, c.Response.Body)
			}
		}
		return c
	}
	var put struct {
		Key      string
		Revision int
	}
	call("PUT", "/docs/:key", "dist/handlers/put", "a", `{"title":"A"}`, &put)
	if put.Key != "a" || put.Revision != 1 {
		t.Fatalf("put %+v", put)
	}
	call("PUT", "/docs/:key", "dist/handlers/put", "b", `{"title":"B"}`, nil)
	var page struct {
		Items []struct {
			Key      string
			Revision int
			Value    map[string]string
		}
		NextCursor string `json:"next_cursor"`
	}
	call("GET", "/docs", "dist/handlers/list", "", "", &page)
	if len(page.Items) != 2 || page.Items[0].Key != "a" || page.Items[1].Value["title"] != "B" {
		t.Fatalf("list %+v", page)
	}
	var del struct{ Deleted bool }
	call("DELETE", "/docs/:key", "dist/handlers/delete", "a", "", &del)
	var missing errorBody
	if c := call("GET", "/docs/:key", "dist/handlers/get", "a", "", &missing); c.Response.Status != 404 || missing.Error.Code != "not_found" {
		t.Fatalf("get after delete: %d %s", c.Response.Status, c.Response.Body)
	}
}
