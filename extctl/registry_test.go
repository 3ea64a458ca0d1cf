package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// registry is a real registryd process (built from ./registryd) on a fresh
// Postgres database, trusting one publisher key for "Example Co".
type registry struct {
	srv         *testenv.RegistrydServer
	url         string
	bin         string
	dbURL       string
	dir         string
	secretsKey  string // the --secrets-key-file
	keys        string // keygen dir: publisher.key, publisher.pub
	adminToken  string // file with a platform_admin token
	tenantToken string // file with a tenant_admin token of tenant-a
}

func startRegistry(t *testing.T) *registry {
	t.Helper()
	bin := testenv.Binary(t, "./registryd")
	pg := testenv.Postgres(t)
	dir := t.TempDir()
	r := &registry{bin: bin, dbURL: pg.URL(), dir: dir, keys: filepath.Join(dir, "keys")}
	mustRun(t, "keygen", "--out", r.keys, "--publisher", "Example Co")

	key, err := exec.Command(bin, "secrets-key", "generate").Output()
	if err != nil {
		t.Fatalf("registryd secrets-key generate: %v", err)
	}
	keyFile := filepath.Join(dir, "secrets.key")
	r.secretsKey = keyFile
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	r.srv = testenv.Registryd(t, testenv.RegistrydOptions{
		DatabaseURL: r.dbURL, BundleStore: "file://" + filepath.Join(dir, "blobs"),
		TrustBundle: filepath.Join(r.keys, "publisher.pub"), SecretsKeyFile: keyFile,
	})
	r.url = r.srv.URL
	r.adminToken = r.token(t, "admin.token", "--role", "platform_admin")
	r.tenantToken = r.token(t, "tenant-a.token", "--role", "tenant_admin", "--tenant", "tenant-a")
	return r
}

// token creates a token with `registryd token create` and writes it, with
// surrounding whitespace, to a file in the registry's directory.
func (r *registry) token(t *testing.T, name string, args ...string) string {
	t.Helper()
	tok := r.srv.Token(t, args...)
	path := filepath.Join(r.dir, name)
	if err := os.WriteFile(path, []byte("\n  "+tok+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flags are the registry flags for a token file.
func (r *registry) flags(tokenFile string) []string {
	return []string{"--registry", r.url, "--token-file", tokenFile}
}

// admin runs extctl as platform admin and fails the test on error.
func (r *registry) admin(t *testing.T, args ...string) string {
	t.Helper()
	return mustRun(t, append(args, r.flags(r.adminToken)...)...)
}

// runIO executes extctl in-process with stdin and a terminal flag.
func runIO(t *testing.T, stdin string, terminal bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin), isTerminal: terminal}
	code := c.main(args)
	return code, out.String(), errb.String()
}

// packSigned copies testdata/ext, applies edit to the manifest text, packs
// and signs it with key, and returns the bundle, signature and hash.
func packSigned(t *testing.T, key string, edit func(string) string, extra map[string][]byte) (bundlePath, sigPath, hash string) {
	t.Helper()
	src := t.TempDir()
	copyTree(t, "testdata/ext", src, false, time.Now())
	mf := filepath.Join(src, "manifest.json")
	b, err := os.ReadFile(mf)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b = []byte(edit(string(b)))
	}
	os.WriteFile(mf, b, 0o644)
	for name, data := range extra {
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		os.WriteFile(filepath.Join(src, name), data, 0o644)
	}
	out := t.TempDir()
	bundlePath, sigPath = filepath.Join(out, "bundle.tar.zst"), filepath.Join(out, "SIGNATURE")
	hash = strings.TrimSpace(mustRun(t, "pack", src, "-o", bundlePath))
	mustRun(t, "sign", bundlePath, "--key", key, "-o", sigPath)
	return bundlePath, sigPath, hash
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, out)
	}
	return v
}

// oneErrorLine checks that a failure printed exactly one line starting
// with "extctl: <code>: " and returns it.
func oneErrorLine(t *testing.T, code int, stderr, wantCode string) string {
	t.Helper()
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, stderr)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("want exactly one line on stderr, got %q", stderr)
	}
	if !strings.HasPrefix(stderr, "extctl: "+wantCode+": ") {
		t.Fatalf("want a line starting with %q, got %q", "extctl: "+wantCode+": ", stderr)
	}
	return stderr
}

// TestRegistryWorkflow drives publish, install, upgrade, disable/enable,
// secrets, revoke, list and uninstall against a real registryd.
func TestRegistryWorkflow(t *testing.T) {
	r := startRegistry(t)
	key := filepath.Join(r.keys, "publisher.key")
	b1, s1, h1 := packSigned(t, key, nil, nil)
	b2, _, h2 := packSigned(t, key, func(m string) string {
		m = strings.Replace(m, `"1.0.0"`, `"1.1.0"`, 1)
		return strings.Replace(m, `["cap:storage.kv"]`, `["cap:storage.kv", "cap:http.fetch", "cap:secrets.get"]`, 1)
	}, nil)
	const ext, tenant = "com.example.cli", "tenant-a"

	// Publish: 201 the first time, 200 (created false, same ids) after.
	out := r.admin(t, "publish", b1, "--signature", s1)
	if !strings.HasPrefix(out, "published com.example.cli@1.0.0 by Example Co ("+h1+")") {
		t.Fatalf("publish printed %q", out)
	}
	type pubOut struct {
		Extension   map[string]string `json:"extension"`
		Version     map[string]string `json:"version"`
		ContentHash string            `json:"content_hash"`
		Created     *bool             `json:"created"`
	}
	again := decodeJSON[pubOut](t, r.admin(t, "publish", b1, "--signature", s1, "--json"))
	if again.Created == nil || *again.Created || again.ContentHash != h1 || again.Extension["name"] != ext ||
		again.Extension["publisher"] != "Example Co" || again.Extension["id"] == "" || again.Version["version"] != "1.0.0" || again.Version["id"] == "" {
		t.Fatalf("republish --json = %+v, want created=false with the same extension/version/hash", again)
	}
	// The signature defaults to SIGNATURE beside the bundle.
	p2 := decodeJSON[pubOut](t, r.admin(t, "publish", b2, "--json"))
	if p2.Created == nil || !*p2.Created || p2.ContentHash != h2 || p2.Version["version"] != "1.1.0" || p2.Extension["id"] != again.Extension["id"] {
		t.Fatalf("publish v2 --json = %+v", p2)
	}

	// Install 1.0.0 with grants, typed config and egress.
	in := decodeJSON[registryapi.Install](t, r.admin(t, "install", "--tenant", tenant, "--extension", ext, "--version", "1.0.0",
		"--grant", "storage.kv", "--config", "limit=5", "--config", "name=hello", "--config", `opts={"deep":true}`, "--config", "flag=true",
		"--egress", "api.example.com,hooks.example.com", "--json"))
	if in.Version.Version != "1.0.0" || in.Status != "enabled" || in.TenantID != tenant || in.ContentHash != h1 {
		t.Fatalf("install = %+v", in)
	}
	if strings.Join(in.GrantedCaps, ",") != "storage.kv" {
		t.Fatalf("granted_caps = %v, want [storage.kv]", in.GrantedCaps)
	}
	var cfg map[string]any
	json.Unmarshal(in.Config, &cfg)
	if cfg["limit"] != 5.0 || cfg["name"] != "hello" || cfg["flag"] != true || cfg["opts"].(map[string]any)["deep"] != true {
		t.Fatalf("config = %s, want JSON values parsed and other values as strings", in.Config)
	}
	if strings.Join(in.EgressAllowlist, ",") != "api.example.com,hooks.example.com" {
		t.Fatalf("egress_allowlist = %v", in.EgressAllowlist)
	}

	// Granting a capability 1.0.0 does not declare is refused by code.
	code, _, errOut := runIO(t, "", false, append([]string{"install", "--tenant", tenant, "--extension", ext, "--grant", "http.fetch"}, r.flags(r.adminToken)...)...)
	if line := oneErrorLine(t, code, errOut, "capability_not_declared"); !strings.Contains(line, "capability=http.fetch") {
		t.Fatalf("details missing from %q", line)
	}

	// Upgrade keeps grants, config and egress; new capabilities stay ungranted.
	out = r.admin(t, "upgrade", "--tenant", tenant, "--extension", ext, "--version", "1.1.0")
	for _, want := range []string{"upgraded com.example.cli for tenant tenant-a: 1.0.0 -> 1.1.0 (enabled)", "not granted", "http.fetch, secrets.get", "api.example.com"} {
		if !strings.Contains(out, want) {
			t.Errorf("upgrade output lacks %q:\n%s", want, out)
		}
	}
	list := decodeJSON[[]registryapi.Install](t, r.admin(t, "list", "--tenant", tenant, "--json"))
	if len(list) != 1 {
		t.Fatalf("list --tenant = %+v, want one install", list)
	}
	up := list[0]
	if up.Version.Version != "1.1.0" || up.ContentHash != h2 || strings.Join(up.GrantedCaps, ",") != "storage.kv" ||
		!bytes.Equal(compactJSON(t, up.Config), compactJSON(t, in.Config)) || len(up.EgressAllowlist) != 2 {
		t.Fatalf("after upgrade: %+v (want 1.1.0 with grants/config/egress kept)", up)
	}
	// Granting the new capability now works.
	gr := decodeJSON[registryapi.Install](t, r.admin(t, "upgrade", "--tenant", tenant, "--extension", ext, "--version", "1.1.0", "--grant", "storage.kv", "--grant", "http.fetch", "--json"))
	if strings.Join(gr.GrantedCaps, ",") != "http.fetch,storage.kv" {
		t.Fatalf("granted_caps = %v", gr.GrantedCaps)
	}
	// upgrade never creates an install and needs --version.
	code, _, errOut = runIO(t, "", false, append([]string{"upgrade", "--tenant", "tenant-z", "--extension", ext, "--version", "1.1.0"}, r.flags(r.adminToken)...)...)
	if code != 1 || !strings.HasPrefix(errOut, "extctl: not_") {
		t.Fatalf("upgrade of a missing install: exit %d, %q", code, errOut)
	}
	if code, _, _ := runIO(t, "", false, append([]string{"upgrade", "--tenant", tenant, "--extension", ext}, r.flags(r.adminToken)...)...); code != 2 {
		t.Fatalf("upgrade without --version: exit %d, want 2", code)
	}

	// Disable and enable.
	if st := decodeJSON[registryapi.Install](t, r.admin(t, "disable", "--tenant", tenant, "--extension", ext, "--json")); st.Status != "disabled" {
		t.Fatalf("disable: status %q", st.Status)
	}
	if out := r.admin(t, "enable", "--tenant", tenant, "--extension", ext); !strings.HasPrefix(out, "enabled com.example.cli@1.1.0 for tenant tenant-a (enabled)") {
		t.Fatalf("enable printed %q", out)
	}

	// Secrets from an argument, a file and stdin; never echoed, listed by key.
	secretFile := filepath.Join(t.TempDir(), "db-pass")
	os.WriteFile(secretFile, []byte("file-secret-value-7f3a\n"), 0o600)
	values := []string{"arg-secret-value-91bc", "file-secret-value-7f3a", "stdin-secret-value-c0de"}
	code, out, errOut = runIO(t, "stdin-secret-value-c0de\n", false, append([]string{"secrets", "set", "--tenant", tenant, "--extension", ext,
		"API_KEY=arg-secret-value-91bc", "DB_PASS=@" + secretFile, "WEBHOOK=-"}, r.flags(r.adminToken)...)...)
	if code != 0 {
		t.Fatalf("secrets set: exit %d: %s", code, errOut)
	}
	for _, v := range values {
		if strings.Contains(out+errOut, v) {
			t.Fatalf("secrets set echoed a value: %q %q", out, errOut)
		}
	}
	if !strings.Contains(out, "API_KEY, DB_PASS, WEBHOOK") {
		t.Fatalf("secrets set output %q does not list the keys", out)
	}
	client := registryapi.New(r.url, readToken(t, r.adminToken), nil)
	view, err := client.GetInstall(t.Context(), tenant, ext)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(view.SecretKeys, ",") != "API_KEY,DB_PASS,WEBHOOK" {
		t.Fatalf("secret_keys = %v", view.SecretKeys)
	}
	raw, _ := json.Marshal(view)
	listOut := r.admin(t, "list", "--tenant", tenant)
	for _, v := range values {
		if bytes.Contains(raw, []byte(v)) || strings.Contains(listOut, v) {
			t.Fatalf("a secret value is visible in the install view")
		}
	}
	// The values reached the registry intact (one trailing newline of the
	// file and stdin dropped): open resolve's envelope as a runner would.
	svc := registryapi.New(r.url, readToken(t, r.token(t, "service.token", "--role", "service")), nil)
	res, _, _, err := svc.Resolve(t.Context(), tenant, ext, "")
	if err != nil || res.SecretEnvelope == nil {
		t.Fatalf("resolve: %v %+v", err, res)
	}
	kek, err := secretbox.LoadKeyFile(r.secretsKey)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := kek.OpenEnvelope(*res.SecretEnvelope, tenant, res.InstallID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if opened["API_KEY"] != values[0] || opened["DB_PASS"] != values[1] || opened["WEBHOOK"] != values[2] {
		t.Fatalf("stored secrets differ from the given values (%d keys)", len(opened))
	}
	// A value that is empty after dropping the newline is refused.
	code, _, errOut = runIO(t, "\n", false, append([]string{"secrets", "set", "--tenant", tenant, "--extension", ext, "EMPTY=-"}, r.flags(r.adminToken)...)...)
	if code != 1 || !strings.Contains(errOut, "secret EMPTY is empty") {
		t.Fatalf("empty secret: exit %d, %q", code, errOut)
	}
	unset := decodeJSON[struct {
		Tenant     string   `json:"tenant"`
		Extension  string   `json:"extension"`
		Unset      []string `json:"unset"`
		SecretKeys []string `json:"secret_keys"`
	}](t, r.admin(t, "secrets", "unset", "--tenant", tenant, "--extension", ext, "DB_PASS", "--json"))
	if strings.Join(unset.SecretKeys, ",") != "API_KEY,WEBHOOK" || strings.Join(unset.Unset, ",") != "DB_PASS" || unset.Tenant != tenant || unset.Extension != ext {
		t.Fatalf("secrets unset --json = %v", unset)
	}

	// A tenant admin token works for its tenant and is refused elsewhere.
	mustRun(t, append([]string{"list", "--tenant", tenant}, r.flags(r.tenantToken)...)...)
	code, _, errOut = runIO(t, "", false, append([]string{"install", "--tenant", "tenant-b", "--extension", ext}, r.flags(r.tenantToken)...)...)
	oneErrorLine(t, code, errOut, "forbidden")

	// Revoke and the catalog listing.
	rv := decodeJSON[registryapi.Version](t, r.admin(t, "revoke", "--extension", ext, "--version", "1.0.0", "--reason", "CVE-2026-0001", "--json"))
	if !rv.Revoked || rv.RevokeReason != "CVE-2026-0001" || rv.Version != "1.0.0" {
		t.Fatalf("revoke --json = %+v", rv)
	}
	code, _, errOut = runIO(t, "", false, append([]string{"install", "--tenant", "tenant-c", "--extension", ext, "--version", "1.0.0"}, r.flags(r.adminToken)...)...)
	oneErrorLine(t, code, errOut, "version_revoked")
	cat := decodeJSON[[]registryapi.Extension](t, r.admin(t, "list", "--json"))
	if len(cat) != 1 || cat[0].Name != ext || cat[0].LatestVersion != "1.1.0" {
		t.Fatalf("list --json = %+v", cat)
	}
	if out := r.admin(t, "list"); !strings.Contains(out, "com.example.cli") || !strings.Contains(out, "1.1.0") {
		t.Fatalf("list printed %q", out)
	}

	// Uninstall.
	un := decodeJSON[map[string]any](t, r.admin(t, "uninstall", "--tenant", tenant, "--extension", ext, "--yes", "--json"))
	if un["uninstalled"] != true || un["tenant"] != tenant || un["extension"] != ext {
		t.Fatalf("uninstall --json = %v", un)
	}
	if out := r.admin(t, "list", "--tenant", tenant, "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("installs after uninstall = %s, want []", out)
	}
	code, _, errOut = runIO(t, "", false, append([]string{"enable", "--tenant", tenant, "--extension", ext}, r.flags(r.adminToken)...)...)
	if code != 1 || !strings.HasPrefix(errOut, "extctl: not_") {
		t.Fatalf("enable after uninstall: exit %d, %q", code, errOut)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func compactJSON(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	b, _ := json.Marshal(v)
	return b
}

// TestPublishRejections checks that each refusal reaches the user as one
// line carrying the registry's code and details, and that local problems
// (token, registry URL) are reported before any upload.
func TestPublishRejections(t *testing.T) {
	r := startRegistry(t)
	key := filepath.Join(r.keys, "publisher.key")
	b1, s1, _ := packSigned(t, key, nil, nil)
	_, s2, _ := packSigned(t, key, func(m string) string { return strings.Replace(m, `"1.0.0"`, `"2.0.0"`, 1) }, nil)

	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, "keygen", "--out", other, "--publisher", "Example Co")
	bOther, sOther, _ := packSigned(t, filepath.Join(other, "publisher.key"), nil, nil)

	garbageSig := filepath.Join(t.TempDir(), "SIGNATURE")
	os.WriteFile(garbageSig, []byte(`{"not":"a signature"}`), 0o644)

	// A corrupt bundle, correctly signed, fails on a §2.1 rule.
	corrupt := filepath.Join(t.TempDir(), "corrupt.tar.zst")
	junk := make([]byte, 4096)
	rand.Read(junk)
	os.WriteFile(corrupt, junk, 0o644)
	corruptSig := filepath.Join(t.TempDir(), "SIGNATURE")
	mustRun(t, "sign", corrupt, "--key", key, "-o", corruptSig)

	// A bundle with an invalid manifest (packed without extctl's check).
	badDir := t.TempDir()
	copyTree(t, "testdata/ext", badDir, false, time.Now())
	os.WriteFile(filepath.Join(badDir, "manifest.json"), []byte(`{"name":"com.example.cli","publisher":"Example Co","version":"one","runtime":"wasm@1"}`), 0o644)
	badManifest := filepath.Join(t.TempDir(), "bad.tar.zst")
	f, err := os.Create(badManifest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Pack(badDir, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	badSig := filepath.Join(t.TempDir(), "SIGNATURE")
	mustRun(t, "sign", badManifest, "--key", key, "-o", badSig)

	emptyToken := filepath.Join(t.TempDir(), "empty.token")
	os.WriteFile(emptyToken, []byte(" \n"), 0o600)
	wrongToken := filepath.Join(t.TempDir(), "wrong.token")
	os.WriteFile(wrongToken, []byte("ext_not-a-real-token\n"), 0o600)
	closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))

	cases := []struct {
		name     string
		args     []string
		wantCode string // registry error code, or "" for a local error
		want     string // substring of the line
	}{
		{"untrusted key is 422 untrusted_key", []string{"publish", bOther, "--signature", sOther}, "untrusted_key", ""},
		{"signature for other bytes is 422 signature_invalid", []string{"publish", b1, "--signature", s2}, "signature_invalid", "content hash"},
		{"malformed signature is 422 signature_invalid", []string{"publish", b1, "--signature", garbageSig}, "signature_invalid", ""},
		{"no signature is 422 signature_missing", []string{"publish", b1, "--unsigned"}, "signature_missing", ""},
		{"corrupt bundle is 400 invalid_bundle with its rule", []string{"publish", corrupt, "--signature", corruptSig}, "invalid_bundle", "rule="},
		{"invalid manifest is 400 invalid_manifest with its issues", []string{"publish", badManifest, "--signature", badSig}, "invalid_manifest", "$.version: "},
		{"wrong token is 401 unauthorized", []string{"publish", b1, "--signature", s1, "--token-file", wrongToken}, "unauthorized", ""},
		{"missing token file is a local error naming the file", []string{"publish", b1, "--signature", s1, "--token-file", "/nonexistent/admin.token"}, "", "reading token file: open /nonexistent/admin.token: no such file or directory"},
		{"empty token file is a local error", []string{"publish", b1, "--signature", s1, "--token-file", emptyToken}, "", "token file " + emptyToken + " is empty"},
		{"unreachable registry names the URL", []string{"publish", b1, "--signature", s1, "--registry", closed}, "", "cannot reach the registry at " + closed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Flags given later win, so a case's own --token-file or
			// --registry overrides the defaults put first.
			args := append([]string{c.args[0]}, r.flags(r.adminToken)...)
			args = append(args, c.args[1:]...)
			code, out, errOut := runIO(t, "", false, args...)
			if out != "" {
				t.Errorf("stdout = %q, want nothing on failure", out)
			}
			line := errOut
			if c.wantCode != "" {
				line = oneErrorLine(t, code, errOut, c.wantCode)
			} else if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "extctl: ") {
				t.Fatalf("exit %d, stderr %q: want one 'extctl: ' line and exit 1", code, errOut)
			}
			t.Log(line)
			if !strings.Contains(line, c.want) {
				t.Fatalf("%q does not contain %q", line, c.want)
			}
		})
	}

	t.Run("no token at all says how to give one", func(t *testing.T) {
		t.Setenv("EXTEDGE_TOKEN_FILE", "")
		t.Setenv("EXTEDGE_TOKEN", "")
		code, _, errOut := runIO(t, "", false, "list", "--registry", r.url)
		if code != 1 || !strings.Contains(errOut, "--token-file") {
			t.Fatalf("exit %d, %q", code, errOut)
		}
	})
	t.Run("environment supplies registry and token", func(t *testing.T) {
		t.Setenv("EXTEDGE_REGISTRY", r.url)
		t.Setenv("EXTEDGE_TOKEN_FILE", "")
		t.Setenv("EXTEDGE_TOKEN", readToken(t, r.adminToken))
		if out := mustRun(t, "list", "--json"); strings.TrimSpace(out) != "[]" {
			t.Fatalf("list = %q, want [] (nothing published)", out)
		}
		t.Setenv("EXTEDGE_TOKEN_FILE", r.adminToken)
		t.Setenv("EXTEDGE_TOKEN", "ignored-when-a-token-file-is-set")
		mustRun(t, "list")
	})
}

// TestPublishProgressBar checks that a bundle over 1 MiB shows a progress
// bar on a terminal and none otherwise.
func TestPublishProgressBar(t *testing.T) {
	r := startRegistry(t)
	key := filepath.Join(r.keys, "publisher.key")
	big := make([]byte, 3<<19) // 1.5 MiB of incompressible bytes
	rand.Read(big)
	b, s, h := packSigned(t, key, nil, map[string][]byte{"ui/big.bin": big})
	if fi, _ := os.Stat(b); fi.Size() <= progressThreshold {
		t.Fatalf("test bundle is only %d bytes", fi.Size())
	}
	args := append([]string{"publish", b, "--signature", s}, r.flags(r.adminToken)...)
	code, out, errOut := runIO(t, "", true, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "100%") || !strings.Contains(errOut, "uploading bundle.tar.zst") {
		t.Fatalf("no progress bar on a terminal: %q", errOut)
	}
	if !strings.Contains(out, h) {
		t.Fatalf("stdout %q lacks the hash", out)
	}
	code, _, errOut = runIO(t, "", false, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("without a terminal: exit %d, stderr %q (want no bar)", code, errOut)
	}
	// Small bundles get no bar even on a terminal.
	small, smallSig, _ := packSigned(t, key, func(m string) string { return strings.Replace(m, `"1.0.0"`, `"1.0.1"`, 1) }, nil)
	code, _, errOut = runIO(t, "", true, append([]string{"publish", small, "--signature", smallSig}, r.flags(r.adminToken)...)...)
	if code != 0 || errOut != "" {
		t.Fatalf("small bundle on a terminal: exit %d, stderr %q (want no bar)", code, errOut)
	}
}

func TestParseConfigUsesJSONWhenValidElseString(t *testing.T) {
	cases := []struct {
		pairs []string
		want  string
	}{
		{[]string{"n=5"}, `{"n":5}`},
		{[]string{"b=false"}, `{"b":false}`},
		{[]string{"s=hello world"}, `{"s":"hello world"}`},
		{[]string{`q="5"`}, `{"q":"5"}`},
		{[]string{`o={"a":[1,2]}`}, `{"o":{"a":[1,2]}}`},
		{[]string{"e="}, `{"e":""}`},
		{[]string{"u=a=b"}, `{"u":"a=b"}`},
		{[]string{"k=1", "k=2"}, `{"k":2}`},
		{[]string{"bad={"}, `{"bad":"{"}`},
	}
	for _, c := range cases {
		got, err := parseConfig(c.pairs)
		if err != nil || string(got) != c.want {
			t.Errorf("parseConfig(%q) = %s, %v; want %s", c.pairs, got, err, c.want)
		}
	}
	for _, bad := range []string{"novalue", "=x"} {
		if _, err := parseConfig([]string{bad}); err == nil {
			t.Errorf("parseConfig(%q) accepted a pair without a key", bad)
		}
	}
}

func TestSplitListKeepsAbsentDistinctFromCleared(t *testing.T) {
	if splitList(nil) != nil {
		t.Error("an absent flag must stay nil (keep the current value)")
	}
	if got := splitList([]string{""}); got == nil || len(got) != 0 {
		t.Errorf("--grant '' = %#v, want an empty list (clear)", got)
	}
	if got := strings.Join(splitList([]string{"a,b", " c ", "a"}), ","); got != "a,b,c" {
		t.Errorf("got %q", got)
	}
}

func TestAPIErrorIsOneLineWithDetails(t *testing.T) {
	cases := []struct {
		name string
		err  registryapi.APIError
		want string
	}{
		{"manifest issues are listed",
			registryapi.APIError{Status: 400, Code: "invalid_manifest", Message: "manifest.json is invalid",
				Details: json.RawMessage(`{"issues":[{"path":"$.version","message":"not semver"},{"path":"$.name","message":"bad\nname"}]}`)},
			`invalid_manifest: manifest.json is invalid ($.version: not semver; $.name: bad name)`},
		{"bundle rule is shown",
			registryapi.APIError{Status: 400, Code: "invalid_bundle", Message: "entry escapes",
				Details: json.RawMessage(`{"rule":"path_traversal","entry":"\"../x\""}`)},
			`invalid_bundle: entry escapes (entry="../x"; rule=path_traversal)`},
		{"numbers are shown raw",
			registryapi.APIError{Status: 413, Code: "bundle_too_large", Message: "too big", Details: json.RawMessage(`{"max_bytes":10}`)},
			`bundle_too_large: too big (max_bytes=10)`},
		{"no details, no message",
			registryapi.APIError{Status: 401, Code: "unauthorized"},
			`unauthorized: Unauthorized`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := (&apiError{&c.err}).Error()
			if got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestSecretArgsNeverEchoValues(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "v")
	os.WriteFile(f, []byte("from-file\r\n"), 0o600)
	vals, keys, err := parseSecretArgs([]string{"A=x=y", "B=@" + f, "C=-"}, strings.NewReader("from-stdin\n"))
	if err != nil {
		t.Fatal(err)
	}
	if vals["A"] != "x=y" || vals["B"] != "from-file" || vals["C"] != "from-stdin" || strings.Join(keys, ",") != "A,B,C" {
		t.Fatalf("got %q %v", vals, keys)
	}
	const secret = "sk_live_DO_NOT_PRINT"
	bad := [][]string{
		{secret},                       // no '='
		{"bad key=" + secret},          // invalid key
		{"A=" + secret, "A=" + secret}, // twice
		{"A=-", "B=-"},                 // stdin twice
		{"A="},                         // empty
		{"A=@/nonexistent/" + "file"},  // unreadable file
		{"A=" + strings.Repeat("x", secretbox.MaxValueSize+1)},
	}
	for _, args := range bad {
		_, _, err := parseSecretArgs(args, strings.NewReader("v"))
		if err == nil {
			t.Errorf("parseSecretArgs accepted %d args", len(args))
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "xxxxxxxx") {
			t.Errorf("error echoes a value: %v", err)
		}
	}
}

func TestRegistryURLMustBeHTTP(t *testing.T) {
	for _, u := range []string{"127.0.0.1:7070", "ftp://x", "http://", ""} {
		if checkRegistryURL(u) == nil {
			t.Errorf("accepted %q", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:7070", "https://registry.example.com/base/"} {
		if err := checkRegistryURL(u); err != nil {
			t.Errorf("refused %q: %v", u, err)
		}
	}
}
