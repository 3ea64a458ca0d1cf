package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/extedge/extedge/internal/blobstore"
	"github.com/extedge/extedge/internal/bundle"
	"github.com/extedge/extedge/internal/registryapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/internal/signing"
	"github.com/extedge/extedge/internal/testenv"
	"github.com/extedge/extedge/migrations"
	"github.com/extedge/extedge/registryd/api"
	"github.com/extedge/extedge/registryd/publish"
	"github.com/extedge/extedge/registryd/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one registryd API on a fresh database, with tokens for each role.
type env struct {
	t       testing.TB
	pg      *testenv.PostgresServer
	db      *store.DB
	srv     *api.Server
	http    *httptest.Server
	keys    *secretbox.Keys
	signer  crypto.Signer // trusted, bound to publisher "Acme Inc."
	blobs   blobstore.Store
	admin   string // platform_admin token
	service string
	tenantA string // tenant_admin of "tenant-a"
	tenantB string // tenant_admin of "tenant-b"
}

type envOptions struct {
	pg            *testenv.PostgresServer
	blobs         blobstore.Store
	maxBundle     int64
	kvQuota       store.KVQuota
	allowUnsigned bool
	now           func() time.Time
	log           *zap.Logger
	noSecretsKey  bool
	tempDir       string
	delivery      store.DeliveryPolicy
	rand          func() float64
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := &env{t: t, pg: o.pg}
	if e.pg == nil {
		e.pg = testenv.Postgres(t)
	}
	db, err := store.Open(ctx, e.pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if db.Bypass {
		t.Fatal("test role bypasses RLS; the harness must use a plain role")
	}
	if _, err := migrations.Apply(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	e.db = db
	e.blobs = o.blobs
	if e.blobs == nil {
		if e.blobs, err = blobstore.NewLocal(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	e.keys, err = secretbox.ParseKey(secretbox.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	e.signer, err = signing.GenerateKey(signing.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.MarshalPublicKeyPEM(e.signer.Public(), "Acme Inc.")
	if err != nil {
		t.Fatal(err)
	}
	trust, err := signing.ParseTrustBundle(pub)
	if err != nil {
		t.Fatal(err)
	}
	feed := store.NewFeed(db, nil)
	pipeline := publish.New(db, publish.Config{
		Blobs: e.blobs, Trust: trust, AllowUnsigned: o.allowUnsigned,
		Limits: bundle.Limits{MaxCompressed: o.maxBundle}, Now: o.now, Log: o.log,
		TempDir: o.tempDir,
	})
	keys := e.keys
	if o.noSecretsKey {
		keys = nil
	}
	e.srv = api.New(api.Config{DB: db, Publish: pipeline, Feed: feed, Keys: keys, KVQuota: o.kvQuota, Now: o.now, Log: o.log,
		Delivery: o.delivery, Rand: o.rand})
	bg, stop := context.WithCancel(context.Background())
	go feed.Run(bg)
	e.http = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.srv.CloseStreams()
		stop()
		e.http.Close()
	})
	e.admin = e.token(store.RolePlatformAdmin, "")
	e.service = e.token(store.RoleService, "")
	e.tenantA = e.token(store.RoleTenantAdmin, "tenant-a")
	e.tenantB = e.token(store.RoleTenantAdmin, "tenant-b")
	return e
}

func (e *env) token(role, tenant string) string {
	e.t.Helper()
	tok, _, err := e.db.CreateToken(context.Background(), role, tenant, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// client returns a registryapi client with token.
func (e *env) client(token string) *registryapi.Client {
	return registryapi.New(e.http.URL, token, nil)
}

// reply is a decoded HTTP reply.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) code() string {
	var eb registryapi.ErrorBody
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error.Code
}

func (r reply) details() map[string]any {
	var eb struct {
		Error struct {
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error.Details
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// do sends a request; body may be nil, []byte, string or a value to encode.
func (e *env) do(method, path, token string, body any, hdr map[string]string) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect fails unless r has status and error code (code "" for success).
func expect(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("got %d %q (%s), want %d %q", r.status, r.code(), bytes.TrimSpace(r.body), status, code)
	}
}

// testBundle is a packed bundle and its signature.
type testBundle struct {
	data []byte
	hash string
	sig  []byte // SIGNATURE JSON
}

// manifestFor returns a valid manifest for name and version.
func manifestFor(name, version string, caps ...string) map[string]any {
	if caps == nil {
		caps = []string{"http.fetch", "storage.kv", "secrets.get"}
	}
	return map[string]any{
		"name": name, "publisher": "Acme Inc.", "version": version, "runtime": "wasm@1",
		"capabilities": caps,
		"ui":           map[string]any{"type": "iframe", "entry": "ui/index.html"},
		"api": map[string]any{"endpoints": []map[string]any{
			{"method": "GET", "path": "/items", "handler": "dist/main.wasm"},
			{"method": "GET", "path": "/items/:id", "handler": "dist/main.wasm"},
		}},
		"events": []map[string]any{{"topic": "ticket.created", "handler": "dist/main.wasm"}},
	}
}

// packBundle packs a bundle with the manifest and extra files (path →
// content), signed by signer (nil: unsigned).
func packBundle(t testing.TB, signer crypto.Signer, man map[string]any, extra map[string]string) testBundle {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"dist/main.wasm": "\x00asm\x01\x00\x00\x00",
		"ui/index.html":  "<!doctype html><title>x</title>",
	}
	for k, v := range extra {
		files[k] = v
	}
	mj, _ := json.Marshal(man)
	files["manifest.json"] = string(mj)
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	hash, err := bundle.Pack(dir, &buf)
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle{data: buf.Bytes(), hash: hash}
	if signer != nil {
		b.sig = signBytes(t, signer, hash)
	}
	return b
}

func signBytes(t testing.TB, signer crypto.Signer, hash string) []byte {
	t.Helper()
	s, err := signing.Sign(signer, hash)
	if err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

// publish posts b with its signature.
func (e *env) publish(token string, b testBundle) reply {
	e.t.Helper()
	hdr := map[string]string{"Content-Type": "application/octet-stream"}
	if b.sig != nil {
		hdr[registryapi.SignatureHeader] = base64.StdEncoding.EncodeToString(b.sig)
	}
	return e.do(http.MethodPost, "/v1/bundles", token, b.data, hdr)
}

// mustPublish publishes name@version and returns the bundle.
func (e *env) mustPublish(name, version string, caps ...string) testBundle {
	e.t.Helper()
	b := packBundle(e.t, e.signer, manifestFor(name, version, caps...), nil)
	r := e.publish(e.admin, b)
	if r.status != http.StatusCreated {
		e.t.Fatalf("publish %s@%s: %d %s", name, version, r.status, r.body)
	}
	return b
}

// install installs name for tenant with grants, as the platform admin.
func (e *env) install(tenant, name, version string, grants ...string) registryapi.Install {
	e.t.Helper()
	if grants == nil {
		grants = []string{}
	}
	r := e.do(http.MethodPut, "/v1/tenants/"+tenant+"/installs/"+name, e.admin,
		map[string]any{"version": version, "granted_caps": grants, "config": map[string]any{"region": "emea"}}, nil)
	expect(e.t, r, http.StatusOK, "")
	var in registryapi.Install
	r.decode(e.t, &in)
	return in
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// tamper flips one byte in the middle of data.
func tamper(data []byte) []byte {
	out := append([]byte(nil), data...)
	out[len(out)/2] ^= 0xff
	return out
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func fmtSlice(s []string) string { return fmt.Sprint(s) }
