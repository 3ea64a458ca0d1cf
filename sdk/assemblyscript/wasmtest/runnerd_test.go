package wasmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/runnerd/runnertest/bundletest"
)

// TestHelloASOnRunnerd: examples/hello-as, signed and published to a blob
// store with its real manifest, served by a real runnerd process over
// /v1/execute; a trap in the test guest is the runner's §6.2 error.
func TestHelloASOnRunnerd(t *testing.T) {
	manifest, err := os.ReadFile(repoPath(t, "examples/hello-as/manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	store := bundletest.LocalStore(t)
	pub := bundletest.NewPublisher(t, "Example")
	hash := pub.Publish(t, store, map[string][]byte{
		"manifest.json":   manifest,
		"dist/hello.wasm": testenv.AssemblyScript(t, repoPath(t, "examples/hello-as")),
	})
	guestManifest := bundletest.Manifest("com.example.astest", "Example", "dist/main")
	guestHash := pub.Publish(t, store, map[string][]byte{"manifest.json": guestManifest, "dist/main.wasm": testGuest(t)})
	trust := filepath.Join(t.TempDir(), "trust.pem")
	if err := os.WriteFile(trust, pub.TrustPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	const token = "as-runner-token"
	rd := testenv.Runnerd(t, testenv.RunnerdOptions{BundleStore: store.String(), TrustBundle: trust, Token: token})
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", rd.Socket)
	}}}
	execute := func(env execapi.Request) (int, []byte) {
		t.Helper()
		body, _ := json.Marshal(env)
		req, _ := http.NewRequest(http.MethodPost, "http://runner/v1/execute", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := execute(execapi.Request{
		Context:  execapi.Context{RequestID: "r-9", TenantID: "t", ExtensionID: "com.example.hello-as", InstallID: "i", VersionID: "v", ContentHash: hash},
		HTTP:     execapi.HTTPRequest{Method: "GET", Path: "/hello", Query: map[string]string{"name": "runner"}, Headers: map[string]string{}},
		Endpoint: execapi.Endpoint{Method: "GET", Path: "/hello", Handler: "dist/hello", Params: map[string]string{}},
	})
	var resp execapi.Response
	if status != 200 || json.Unmarshal(body, &resp) != nil {
		t.Fatalf("execute: %d %s", status, body)
	}
	var out map[string]string
	if resp.Status != 200 || resp.Headers["content-type"] != "application/json" || json.Unmarshal(resp.Body, &out) != nil ||
		out["message"] != "hello, runner" || out["request_id"] != "r-9" {
		t.Fatalf("hello over runnerd: %s", body)
	}

	status, body = execute(execapi.Request{
		Context:  execapi.Context{RequestID: "r-10", TenantID: "t", ExtensionID: "com.example.astest", InstallID: "i", VersionID: "v", ContentHash: guestHash},
		HTTP:     execapi.HTTPRequest{Method: "GET", Path: "/trap", Query: map[string]string{}, Headers: map[string]string{}},
		Endpoint: execapi.Endpoint{Method: "GET", Path: "/h0", Handler: "dist/main", Params: map[string]string{}},
	})
	var eb errorBody
	if json.Unmarshal(body, &eb); status != 502 || eb.Error.Code != execapi.CodeTrap {
		t.Fatalf("trap over runnerd: %d %s", status, body)
	}
}
