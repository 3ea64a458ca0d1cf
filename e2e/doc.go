// Package e2e is extedge's end-to-end test: it starts the demo stack
// (internal/devstack — registryd on an embedded PostgreSQL, two runnerd on
// Unix sockets, Caddy with the extedge module, the PSA stand-in with its
// vendor API mock) from freshly built binaries, publishes and installs the
// sample extension examples/agreements for the tenant "demo", and checks the
// product the way its users meet it:
//
//   - over HTTP, the gateway's API and UI routes as a PSA client calls them
//     (list, sync through the vendor mock, get, tenant without the install,
//     missing token, UI asset headers and revalidation);
//   - in a headless Chromium, the PSA host page mounting the extension's
//     sandboxed iframe with the JS SDK and the UI kit: the <ext-data-table>
//     rendered from the API, the Sync button calling the vendor through the
//     runner, sorting by a header, the page size selector and paging (all
//     server-side), and the error state for a tenant without the install. A full-page screenshot
//     is saved under $EXTEDGE_ARTIFACTS (default <module root>/test-artifacts).
//
// The package has no non-test code. Chromium is /usr/bin/chromium or
// $EXTEDGE_CHROMIUM; without it the browser test fails with an install hint
// unless EXTEDGE_SKIP_BROWSER is set, which turns the failure into a skip.
package e2e
