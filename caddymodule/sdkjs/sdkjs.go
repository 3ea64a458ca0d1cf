// Package sdkjs embeds the JS SDK served at /ext-sdk/v1/ (SPEC §8.4, §9).
//
// The files under v1/ are copies of sdk/js/ (go:embed cannot reach outside
// the package directory). To repoint the embed at the real SDK, copy
// sdk/js/iframe.js and sdk/js/host.js over v1/ (or have the build do
// `cp sdk/js/*.js caddymodule/sdkjs/v1/`); the gateway serves whatever *.js
// files are there, nothing else changes. Until the SDK lands these are
// placeholders.
package sdkjs

import "embed"

// FS holds v1/iframe.js and v1/host.js.
//
//go:embed v1/*.js
var FS embed.FS
