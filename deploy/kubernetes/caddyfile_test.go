package kubernetes

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/extedge/extedge/caddymodule"
)

// caddyConfig is the part of Caddy's JSON config the tests look at.
type caddyConfig struct {
	Admin struct {
		Listen string `json:"listen"`
	} `json:"admin"`
	Apps struct {
		HTTP struct {
			GracePeriod int64                  `json:"grace_period"`
			Servers     map[string]caddyServer `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
	raw map[string]any
}

type caddyServer struct {
	Listen []string          `json:"listen"`
	Routes []json.RawMessage `json:"routes"`
}

func gatewayCaddyfile(t *testing.T, m *manifests) string {
	t.Helper()
	cm := m.configMaps["extedge-gateway"]
	if cm == nil || cm.Data["Caddyfile"] == "" {
		t.Fatal("ConfigMap extedge-gateway has no Caddyfile")
	}
	return cm.Data["Caddyfile"]
}

// adaptCaddyfile adapts with the real Caddyfile adapter, the standard
// modules and the extedge module linked in: unknown or misspelled
// subdirectives fail here. Adapting neither reads files nor dials.
func adaptCaddyfile(t *testing.T, src string) *caddyConfig {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting the configmap's Caddyfile: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapting the configmap's Caddyfile: warning: %s", w.String())
	}
	var cfg caddyConfig
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &cfg.raw); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// opsServer returns the name and port of the server that serves /metrics.
func opsServer(t *testing.T, cfg *caddyConfig) (string, int) {
	t.Helper()
	for name, srv := range cfg.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			if strings.Contains(string(r), `"handler":"metrics"`) && len(srv.Listen) == 1 {
				l := srv.Listen[0]
				port, err := strconv.Atoi(l[strings.LastIndex(l, ":")+1:])
				if err != nil {
					t.Fatalf("server %s listen %q: %v", name, l, err)
				}
				return name, port
			}
		}
	}
	t.Fatal("no Caddy server serves metrics (the gateway's /metrics must be scrapeable on the pod IP)")
	return "", 0
}

func opsPort(t *testing.T, cfg *caddyConfig) int {
	_, port := opsServer(t, cfg)
	return port
}

func TestCaddyfileIsFormatted(t *testing.T) {
	src := gatewayCaddyfile(t, loadManifests(t))
	if got := string(caddyfile.Format([]byte(src))); got != src {
		t.Errorf("the configmap's Caddyfile is not `caddy fmt` formatted (tabs for indentation)")
	}
}

// TestCaddyOpsListenerServesMetricsAndHealth runs the configmap's ops site
// in an in-process Caddy (on a free loopback port, admin API disabled) and
// asks it what Prometheus and the kubelet will ask.
func TestCaddyOpsListenerServesMetricsAndHealth(t *testing.T) {
	cfg := adaptCaddyfile(t, gatewayCaddyfile(t, loadManifests(t)))
	name, _ := opsServer(t, cfg)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	servers := cfg.raw["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)
	ops := servers[name].(map[string]any)
	ops["listen"] = []string{addr}
	run := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": t.TempDir()},
		"apps": map[string]any{"http": map[string]any{
			"grace_period": cfg.Apps.HTTP.GracePeriod,
			"servers":      map[string]any{name: ops},
		}},
	}
	js, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		t.Fatalf("loading the ops site: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := client.Get(fmt.Sprintf("http://%s%s", addr, path))
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatalf("GET %s: %v", path, err)
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(body)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz: %d, want 200", code)
	}
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, "# TYPE ") {
		t.Errorf("GET /metrics: %d, %.200q; want 200 with Prometheus text", code, body)
	}
	if code, _ := get("/config/"); code != http.StatusNotFound {
		t.Errorf("GET /config/ on the ops listener: %d, want 404 (only /metrics and /healthz)", code)
	}
}
