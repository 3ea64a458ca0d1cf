package api

import (
	"net/http"
	"time"

	"github.com/extedge/extedge/registryd/store"
)

// route is one API operation. The table below is the only place routes are
// declared: New registers the mux from it and builds GET /openapi.json from
// it, so the document cannot drift from what the server serves.
type route struct {
	method string
	// path is a ServeMux path; its {name} segments are OpenAPI path
	// parameters as they stand.
	path    string
	summary string
	// roles may call the route with a bearer token; nil needs no token.
	roles []string
	// timeout bounds the request. Zero is requestTimeout; noTimeout leaves
	// the limit to the handler (streams).
	timeout time.Duration
	handle  func(s *Server, w http.ResponseWriter, r *http.Request)
}

// pattern is the route's ServeMux pattern, also its metrics label.
func (rt route) pattern() string { return rt.method + " " + rt.path }

// noTimeout marks a route without a server-side request deadline.
const noTimeout time.Duration = -1

// Role sets used by the routes.
var (
	anyRole       = []string{store.RolePlatformAdmin, store.RoleTenantAdmin, store.RoleService}
	platformAdmin = []string{store.RolePlatformAdmin}
	tenantAdmins  = []string{store.RolePlatformAdmin, store.RoleTenantAdmin}
	serviceRoles  = []string{store.RoleService, store.RolePlatformAdmin}
)

// routes is the route table (SPEC §7.3, §7.4, §12, §18, §21).
var routes = []route{
	{method: "GET", path: "/healthz", summary: "Liveness: the process answers", handle: (*Server).healthz},
	{method: "GET", path: "/readyz", summary: "Readiness: the database answers within 2 s", handle: (*Server).readyz},
	{method: "GET", path: "/metrics", summary: "Prometheus metrics", handle: (*Server).serveMetrics},
	{method: "GET", path: "/openapi.json", summary: "This OpenAPI 3 document", handle: (*Server).serveOpenAPI},

	{method: "POST", path: "/v1/bundles", summary: "Publish a signed bundle (raw bundle.tar.zst body, X-Extedge-Signature header)", roles: platformAdmin, timeout: publishTimeout, handle: (*Server).publishBundle},
	{method: "GET", path: "/v1/extensions", summary: "List extensions", roles: anyRole, handle: (*Server).listExtensions},
	{method: "GET", path: "/v1/extensions/{name}", summary: "Get an extension", roles: anyRole, handle: (*Server).getExtension},
	{method: "GET", path: "/v1/extensions/{name}/versions", summary: "List an extension's versions", roles: anyRole, handle: (*Server).listVersions},
	{method: "GET", path: "/v1/extensions/{name}/versions/{version}", summary: "Get a version, with its manifest", roles: anyRole, handle: (*Server).getVersion},
	{method: "POST", path: "/v1/extensions/{name}/deprecate", summary: "Deprecate an extension", roles: platformAdmin, handle: (*Server).deprecate},
	{method: "POST", path: "/v1/extensions/{name}/versions/{version}/revoke", summary: "Revoke a version", roles: platformAdmin, handle: (*Server).revoke},

	{method: "GET", path: "/v1/tenants/{tenant}/installs", summary: "List a tenant's installs", roles: tenantAdmins, handle: (*Server).listInstalls},
	{method: "GET", path: "/v1/tenants/{tenant}/installs/{name}", summary: "Get an install", roles: tenantAdmins, handle: (*Server).getInstall},
	{method: "PUT", path: "/v1/tenants/{tenant}/installs/{name}", summary: "Install or update an extension for a tenant", roles: tenantAdmins, handle: (*Server).putInstall},
	{method: "DELETE", path: "/v1/tenants/{tenant}/installs/{name}", summary: "Uninstall (with its secrets, KV data and subscriptions)", roles: tenantAdmins, handle: (*Server).deleteInstall},
	{method: "POST", path: "/v1/tenants/{tenant}/installs/{name}/enable", summary: "Enable an install", roles: tenantAdmins, handle: (*Server).enableInstall},
	{method: "POST", path: "/v1/tenants/{tenant}/installs/{name}/disable", summary: "Disable an install", roles: tenantAdmins, handle: (*Server).disableInstall},
	{method: "PUT", path: "/v1/tenants/{tenant}/installs/{name}/secrets", summary: "Merge an install's secrets (write-only; an empty value deletes)", roles: tenantAdmins, handle: (*Server).putSecrets},
	{method: "GET", path: "/v1/tenants/{tenant}/installs/{name}/deliveries", summary: "List an install's event deliveries, newest first (?status=pending|leased|succeeded|dead, ?limit=)", roles: tenantAdmins, handle: (*Server).listDeliveries},
	{method: "POST", path: "/v1/tenants/{tenant}/installs/{name}/deliveries/{id}/retry", summary: "Make a dead delivery pending again with fresh attempts", roles: tenantAdmins, handle: (*Server).retryDelivery},
	{method: "GET", path: "/v1/tenants/{tenant}/installs/{name}/executions", summary: "List an install's execution records, newest first, in cursor pages (?since=&until=&outcome=&endpoint=&status=&request_id=&limit=&cursor=)", roles: tenantAdmins, handle: (*Server).listExecutions},
	{method: "GET", path: "/v1/tenants/{tenant}/installs/{name}/usage", summary: "An install's per-minute invocations, errors, CPU ms and egress bytes in [?from, ?to) (default the last hour)", roles: tenantAdmins, handle: (*Server).installUsage},

	{method: "GET", path: "/v1/resolve/{tenant}/{extension}", summary: "Resolve a tenant's install for gateways and runners (ETag, sealed secret envelope)", roles: serviceRoles, handle: (*Server).resolve},
	{method: "GET", path: "/v1/bundles/{hash}/status", summary: "Whether a content hash is a published, non-revoked version of ?extension=", roles: serviceRoles, handle: (*Server).bundleStatus},
	{method: "GET", path: "/v1/changes", summary: "Change feed (Server-Sent Events; Last-Event-ID resumes)", roles: serviceRoles, timeout: noTimeout, handle: (*Server).changes},
	{method: "POST", path: "/v1/internal/storage", summary: "KV operations for runners", roles: serviceRoles, handle: (*Server).storage},
	{method: "POST", path: "/v1/internal/executions", summary: "Store a batch of execution records", roles: serviceRoles, handle: (*Server).executions},

	{method: "POST", path: "/v1/events", summary: "Publish an event: one delivery per subscribed enabled install of its tenant (a repeated id is 200 with the first answer)", roles: serviceRoles, handle: (*Server).publishEvent},
	{method: "POST", path: "/v1/internal/deliveries/lease", summary: "Lease due event deliveries for a runner (each held until lease_expires_at)", roles: serviceRoles, handle: (*Server).leaseDeliveries},
	{method: "POST", path: "/v1/internal/deliveries/{id}/complete", summary: "Acknowledge a leased delivery (the guest answered 2xx)", roles: serviceRoles, handle: (*Server).completeDelivery},
	{method: "POST", path: "/v1/internal/deliveries/{id}/fail", summary: "Fail a leased delivery: retried with backoff, or dead when not retryable or out of attempts", roles: serviceRoles, handle: (*Server).failDelivery},
}

// register mounts every route of the table on the server's mux.
func (s *Server) register() {
	s.timeouts = make(map[string]time.Duration, len(routes))
	for _, rt := range routes {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		if rt.roles != nil {
			s.mux.Handle(rt.pattern(), s.auth(rt.roles, h))
		} else {
			s.mux.Handle(rt.pattern(), h)
		}
		timeout := rt.timeout
		if timeout == 0 {
			timeout = requestTimeout
		}
		s.timeouts[rt.pattern()] = timeout
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.metricsHandler.ServeHTTP(w, r)
}
