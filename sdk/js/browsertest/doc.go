// Package browsertest runs extedge's browser code — the JS SDK (sdk/js:
// host.js and iframe.js) and the UI kit (sdk/ui: ui.js, ui.css, react.js) —
// in a real headless Chromium. Its tests serve a PSA host page from one
// origin and the gateway (the SDK and the kit under /ext-sdk/v1/, a test
// extension's UI under /ext-ui/ and fake /api/ext/ endpoints) from another,
// then drive both through the DevTools protocol. A third listener plays the
// gateway's dedicated UI origin (mountExtension's uiBase, SPEC §16). It has
// no non-test code.
//
// The tests need Chromium (/usr/bin/chromium, or the path in EXTEDGE_CHROMIUM).
// Without it they fail with an install hint, unless EXTEDGE_SKIP_BROWSER is
// set, which turns the failure into an explicit skip. The React binding
// test also needs npm: it installs the React that testdata/npm pins, once
// per machine (testenv.NPMPackages), and fails without npm.
package browsertest
