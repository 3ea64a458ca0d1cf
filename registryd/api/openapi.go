package api

import (
	"encoding/json"
	"net/http"
	"strings"
)

// openAPIVersion is the OpenAPI release the document follows.
const openAPIVersion = "3.1.0"

// openAPIDocument builds the OpenAPI 3 document of the route table:
// every route is one operation with its summary, its path parameters, the
// roles that may call it, and the {"error":{…}} reply every route shares.
// Request and reply bodies are described in SPEC §7 and internal/registryapi.
func openAPIDocument(table []route) []byte {
	paths := map[string]map[string]any{}
	for _, rt := range table {
		op := map[string]any{
			"summary": rt.summary,
			"responses": map[string]any{
				"2XX":     map[string]any{"description": "success"},
				"default": map[string]any{"$ref": "#/components/responses/Error"},
			},
		}
		if params := pathParams(rt.path); len(params) > 0 {
			op["parameters"] = params
		}
		if rt.roles != nil {
			op["security"] = []map[string][]string{{"bearer": {}}}
			op["description"] = "Roles: " + strings.Join(rt.roles, ", ") + "."
			op["x-extedge-roles"] = rt.roles
		} else {
			op["security"] = []map[string][]string{}
			op["description"] = "No token needed."
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": openAPIVersion,
		"info": map[string]any{
			"title":       "extedge registryd API",
			"version":     "v1",
			"description": "The registry's admin API (extctl, operators) and service API (gateways, runners); SPEC §7.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "A token from `registryd token create`."},
			},
			"schemas": map[string]any{
				"Error": map[string]any{
					"type":     "object",
					"required": []string{"error"},
					"properties": map[string]any{
						"error": map[string]any{
							"type":     "object",
							"required": []string{"code", "message"},
							"properties": map[string]any{
								"code":    map[string]any{"type": "string", "description": "A stable error code (registryd/README.md)."},
								"message": map[string]any{"type": "string"},
								"details": map[string]any{},
							},
						},
					},
				},
			},
			"responses": map[string]any{
				"Error": map[string]any{
					"description": "An error with a stable code",
					"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
				},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // maps of strings and slices always marshal
	}
	return append(b, '\n')
}

// pathParams lists the {name} segments of a mux path as OpenAPI
// parameters.
func pathParams(path string) []map[string]any {
	var out []map[string]any
	for _, seg := range strings.Split(path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			out = append(out, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
	}
	return out
}

// serveOpenAPI is GET /openapi.json.
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openAPI)
}
