// Package debuglog is the shared naming of the debug stream (SPEC §6.3,
// §8.4): runners (runnerd/debugstream) append a call's log lines to one
// Redis stream per tenant and extension, and the gateway tails that stream
// for /api/ext-debug/stream. Both build the stream's key here, so they can
// never look in different places.
package debuglog

// StreamKey is the Redis stream of a tenant's extension:
// `ext-debug:<tenant>:<extension>`. Tenant ids (internal/tenantid) and
// extension names (internal/manifest) cannot contain ':', so keys of
// different pairs never collide.
func StreamKey(tenant, extension string) string {
	return "ext-debug:" + tenant + ":" + extension
}
