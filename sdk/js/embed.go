// Package js holds extedge's JavaScript SDK (SPEC §9): host.js, the bridge a
// PSA page uses to mount an extension's sandboxed iframe, and iframe.js, the
// module an extension's UI imports to talk to the host and to its own API.
// Both are plain ES modules without a build step; the gateway embeds them
// from FS and serves them under /ext-sdk/{Version}/.
package js

import "embed"

// Version is the SDK's URL version segment: the gateway serves FS at
// /ext-sdk/v1/. It changes only with an incompatible message protocol.
const Version = "v1"

// FS holds host.js, iframe.js and protocol.js (the envelope, id, token and
// API path rules both import) at its root.
//
//go:embed host.js iframe.js protocol.js
var FS embed.FS
