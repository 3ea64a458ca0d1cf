package secrets

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/extedge/extedge/internal/execapi"
	"github.com/extedge/extedge/internal/secretbox"
	"github.com/extedge/extedge/runnerd/hostapi"
)

func TestSecretsGet(t *testing.T) {
	keys, err := secretbox.ParseKey(secretbox.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sealed, err := keys.SealEnvelope("t1", "i1", map[string]string{"api_key": "s3cr3t-value"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := keys.SealEnvelope("t1", "i1", map[string]string{"api_key": "old"}, now.Add(-time.Minute))
	set, _ := hostapi.NewSet(New(keys, nil))
	get := func(tenant, install string, env *string, req string) map[string]any {
		inv := hostapi.NewInvocation(context.Background(), &execapi.Request{
			Context: execapi.Context{TenantID: tenant, InstallID: install}, Capabilities: []string{"secrets.get"}, SecretEnvelope: env,
		}, hostapi.Budgets{})
		b := set.Imports()[0]
		out, _ := set.CallJSON(inv, &b, []byte(req))
		var m map[string]any
		json.Unmarshal(out, &m)
		if env != nil && strings.Contains(string(out), *env) {
			t.Fatalf("reply echoes the envelope: %s", out)
		}
		return m
	}
	code := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(string)
		return c
	}
	if m := get("t1", "i1", &sealed, `{"key":"api_key"}`); m["value"] != "s3cr3t-value" {
		t.Fatalf("get: %v", m)
	}
	for _, tt := range []struct {
		name, tenant, install string
		env                   *string
		key, code             string
	}{
		{"unknown key is not_found", "t1", "i1", &sealed, "nope", CodeNotFound},
		{"envelope of another tenant does not open", "t2", "i1", &sealed, "api_key", CodeUnavailable},
		{"envelope of another install does not open", "t1", "i2", &sealed, "api_key", CodeUnavailable},
		{"expired envelope does not open", "t1", "i1", &expired, "api_key", CodeUnavailable},
		{"no envelope is not_found", "t1", "i1", nil, "api_key", CodeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := get(tt.tenant, tt.install, tt.env, `{"key":"`+tt.key+`"}`)
			if code(m) != tt.code {
				t.Fatalf("got %v, want %s", m, tt.code)
			}
			if strings.Contains(toJSON(m), "s3cr3t") {
				t.Fatal("secret value leaked into an error")
			}
		})
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
