// Package ui holds extedge's UI kit (SPEC §19): ui.js (theme tokens,
// <ext-data-table>, <ext-button>, <ext-badge>), ui.css (the --alga-* tokens
// and the components' styles, from tokens only) and react.js (React
// bindings with React as a peer). They are plain ES modules and CSS
// without a build step; the gateway embeds them from FS and serves them
// next to the JS SDK under /ext-sdk/v1/, so ui.js imports ./iframe.js.
package ui

import "embed"

// FS holds ui.js, ui.css and react.js at its root.
//
//go:embed ui.js ui.css react.js
var FS embed.FS
