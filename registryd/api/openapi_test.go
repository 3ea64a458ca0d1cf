package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Summary    string                `json:"summary"`
		Security   []map[string][]string `json:"security"`
		Parameters []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
	} `json:"paths"`
}

func fetchOpenAPI(t *testing.T, e *env) openAPIDoc {
	t.Helper()
	r := e.do("GET", "/openapi.json", "", nil, nil)
	expect(t, r, http.StatusOK, "")
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var doc openAPIDoc
	r.decode(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf(`openapi = %q, want "3.x"`, doc.OpenAPI)
	}
	return doc
}

// probeMethods are the methods the test tries on every documented path
// (HEAD is left out: a GET route answers it).
var probeMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH"}

// TestOpenAPIMatchesTheRoutes: GET /openapi.json (no token) documents
// exactly the routes the server serves. Every documented operation is
// served (the server's own route label for it, as /metrics reports it, is
// the documented method and path), every other method on a documented path
// is 405, every route SPEC names is documented, and a documented bearer
// requirement is what the server enforces.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	doc := fetchOpenAPI(t, e)

	documented := map[string]bool{}
	paramRE := regexp.MustCompile(`\{[^}]+\}`)
	for path, ops := range doc.Paths {
		concrete := paramRE.ReplaceAllString(path, "probe")
		for _, m := range probeMethods {
			op, ok := ops[strings.ToLower(m)]
			r := e.do(m, concrete, "", nil, nil)
			if !ok {
				if r.status != http.StatusMethodNotAllowed {
					t.Errorf("%s %s is not documented but the server answers %d %s", m, path, r.status, r.body)
				}
				continue
			}
			documented[m+" "+path] = true
			if r.status == http.StatusNotFound && strings.Contains(string(r.body), "no such API") || r.status == http.StatusMethodNotAllowed {
				t.Errorf("%s %s is documented but not served: %d %s", m, path, r.status, r.body)
			}
			wantsToken := len(op.Security) > 0
			if wantsToken != (r.status == http.StatusUnauthorized) {
				t.Errorf("%s %s: documented security %v, but without a token the server answers %d", m, path, op.Security, r.status)
			}
			if op.Summary == "" {
				t.Errorf("%s %s has no summary", m, path)
			}
			var params []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					params = append(params, "{"+p.Name+"}")
				}
			}
			if got, want := strings.Join(params, ""), strings.Join(paramRE.FindAllString(path, -1), ""); got != want {
				t.Errorf("%s %s: path parameters %s, want %s", m, path, got, want)
			}
		}
	}

	// The routes the server matched while probing, by its own labels.
	served := map[string]bool{}
	resp, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	labelRE := regexp.MustCompile(`extedge_registry_http_requests_total\{code="\d+",route="([^"]+)"\}`)
	for _, m := range labelRE.FindAllStringSubmatch(string(body), -1) {
		if m[1] != "unmatched" {
			served[m[1]] = true
		}
	}
	if len(served) == 0 {
		t.Fatalf("no route labels in /metrics:\n%s", body)
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("the server serves %q, which the document lacks", r)
		}
	}
	for r := range documented {
		// /metrics is scraped after the probes: its own request is counted then.
		if !served[r] && r != "GET /metrics" {
			t.Errorf("the document has %q, which the server did not match", r)
		}
	}

	// Every route SPEC §7.3, §7.4, §12, §18 and §21 names.
	spec := []string{
		"POST /v1/bundles",
		"GET /v1/extensions", "GET /v1/extensions/{name}", "GET /v1/extensions/{name}/versions",
		"GET /v1/extensions/{name}/versions/{version}",
		"POST /v1/extensions/{name}/deprecate", "POST /v1/extensions/{name}/versions/{version}/revoke",
		"PUT /v1/tenants/{tenant}/installs/{name}", "GET /v1/tenants/{tenant}/installs",
		"GET /v1/tenants/{tenant}/installs/{name}", "POST /v1/tenants/{tenant}/installs/{name}/enable",
		"POST /v1/tenants/{tenant}/installs/{name}/disable", "DELETE /v1/tenants/{tenant}/installs/{name}",
		"PUT /v1/tenants/{tenant}/installs/{name}/secrets",
		"GET /v1/tenants/{tenant}/installs/{name}/deliveries", "POST /v1/tenants/{tenant}/installs/{name}/deliveries/{id}/retry",
		"GET /v1/tenants/{tenant}/installs/{name}/executions", "GET /v1/tenants/{tenant}/installs/{name}/usage",
		"GET /v1/resolve/{tenant}/{extension}", "GET /v1/bundles/{hash}/status", "GET /v1/changes",
		"POST /v1/internal/storage", "POST /v1/internal/executions",
		"POST /v1/events", "POST /v1/internal/deliveries/lease",
		"POST /v1/internal/deliveries/{id}/complete", "POST /v1/internal/deliveries/{id}/fail",
		"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json",
	}
	for _, r := range spec {
		if !documented[r] {
			t.Errorf("SPEC route %q is not in the document", r)
		}
	}
	if len(documented) != len(spec) {
		var got []string
		for r := range documented {
			got = append(got, r)
		}
		sort.Strings(got)
		t.Errorf("the document has %d operations, SPEC names %d: %v", len(documented), len(spec), got)
	}
}

// TestOpenAPIIsJSON: the document is one JSON object that needs no token.
func TestOpenAPIIsJSON(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do("GET", "/openapi.json", "", nil, nil)
	expect(t, r, http.StatusOK, "")
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	for _, k := range []string{"openapi", "info", "paths", "components"} {
		if _, ok := v[k]; !ok {
			t.Errorf("document lacks %q", k)
		}
	}
}
