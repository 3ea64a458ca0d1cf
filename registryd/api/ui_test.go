package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

// psaStyleManifest is a manifest as the PSA's extension system writes them:
// cap: prefixes, menu hooks for both portals, and routes to extra pages.
func psaStyleManifest(name, version string) map[string]any {
	return map[string]any{
		"name": name, "publisher": "Acme Inc.", "version": version, "runtime": "wasm-js@1",
		"capabilities": []string{"cap:context.read", "cap:storage.kv"},
		"ui": map[string]any{
			"type": "iframe", "entry": "ui/index.html",
			"hooks": map[string]any{
				"appMenu":          map[string]any{"label": "Agreements"},
				"clientPortalMenu": map[string]any{"label": "My agreements"},
			},
			"routes": []map[string]any{
				{"path": "/settings", "iframePath": "ui/settings.html"},
				{"path": "/agreements/:id", "iframePath": "ui/detail.html"},
			},
		},
		"api": map[string]any{"endpoints": []map[string]any{
			{"method": "GET", "path": "/agreements", "handler": "dist/main.wasm"},
		}},
		"entry":  "dist/main.wasm",
		"assets": []string{"ui/**/*"},
	}
}

// uiSection is the ui object of a resolve or version reply, decoded from
// the raw JSON so that the test sees the wire spelling, not the Go types.
type uiSection struct {
	Entry string `json:"entry"`
	Hooks struct {
		AppMenu          struct{ Label string } `json:"appMenu"`
		ClientPortalMenu struct{ Label string } `json:"clientPortalMenu"`
	} `json:"hooks"`
	Routes []struct {
		Path       string `json:"path"`
		IframePath string `json:"iframePath"`
	} `json:"routes"`
}

func decodeUI(t *testing.T, body []byte) (ui *uiSection, raw map[string]json.RawMessage) {
	t.Helper()
	var reply struct {
		UI json.RawMessage `json:"ui"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if err := json.Unmarshal(reply.UI, &raw); err != nil || raw == nil {
		t.Fatalf("ui = %s (%v)", reply.UI, err)
	}
	ui = new(uiSection)
	if err := json.Unmarshal(reply.UI, ui); err != nil {
		t.Fatal(err)
	}
	return ui, raw
}

func checkPublishedUI(t *testing.T, body []byte) {
	t.Helper()
	ui, _ := decodeUI(t, body)
	if ui.Entry != "ui/index.html" {
		t.Errorf("ui.entry = %q", ui.Entry)
	}
	if ui.Hooks.AppMenu.Label != "Agreements" || ui.Hooks.ClientPortalMenu.Label != "My agreements" {
		t.Errorf("ui.hooks = %+v", ui.Hooks)
	}
	if len(ui.Routes) != 2 || ui.Routes[0].Path != "/settings" || ui.Routes[0].IframePath != "ui/settings.html" ||
		ui.Routes[1].Path != "/agreements/:id" || ui.Routes[1].IframePath != "ui/detail.html" {
		t.Errorf("ui.routes = %+v", ui.Routes)
	}
}

// TestResolveReturnsUIHooksAndRoutes: a PSA builds its menus from the
// registry, so resolve and the version read return ui.hooks and ui.routes
// exactly as published (SPEC §4, §7.4); a manifest without them has none.
func TestResolveReturnsUIHooksAndRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	b := packBundle(t, e.signer, psaStyleManifest("com.acme.agreements", "1.0.0"), map[string]string{
		"ui/settings.html": "<!doctype html><title>settings</title>",
		"ui/detail.html":   "<!doctype html><title>detail</title>",
	})
	expect(t, e.publish(e.admin, b), http.StatusCreated, "")
	e.install("tenant-a", "com.acme.agreements", "1.0.0")
	e.mustPublish("com.acme.plain", "1.0.0")
	e.install("tenant-a", "com.acme.plain", "1.0.0")

	t.Run("resolve returns hooks and routes as published", func(t *testing.T) {
		r := e.do("GET", "/v1/resolve/tenant-a/com.acme.agreements", e.service, nil, nil)
		expect(t, r, 200, "")
		checkPublishedUI(t, r.body)
	})
	t.Run("the version read returns hooks and routes as published", func(t *testing.T) {
		r := e.do("GET", "/v1/extensions/com.acme.agreements/versions/1.0.0", e.admin, nil, nil)
		expect(t, r, 200, "")
		checkPublishedUI(t, r.body)
	})
	t.Run("the typed client keeps them, so the gateway's cache carries them", func(t *testing.T) {
		res, _, _, err := e.client(e.service).Resolve(context.Background(), "tenant-a", "com.acme.agreements", "")
		if err != nil {
			t.Fatal(err)
		}
		if res.UI == nil || res.UI.Hooks == nil || res.UI.Hooks.AppMenu == nil || res.UI.Hooks.AppMenu.Label != "Agreements" ||
			len(res.UI.Routes) != 2 || res.UI.Routes[1].IframePath != "ui/detail.html" {
			t.Fatalf("ui = %+v", res.UI)
		}
	})
	t.Run("a manifest without hooks and routes has neither key", func(t *testing.T) {
		r := e.do("GET", "/v1/resolve/tenant-a/com.acme.plain", e.service, nil, nil)
		expect(t, r, 200, "")
		_, raw := decodeUI(t, r.body)
		if _, ok := raw["hooks"]; ok {
			t.Errorf("hooks present: %s", r.body)
		}
		if _, ok := raw["routes"]; ok {
			t.Errorf("routes present: %s", r.body)
		}
	})
}
