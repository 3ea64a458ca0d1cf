#!/usr/bin/env bash
# Build Caddy with the extedge gateway module into bin/caddy (SPEC §12).
#
# With xcaddy on PATH (go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest)
# the module is plugged into the pinned Caddy version from this checkout.
# Without it, or with XCADDY=0, the checked-in main package ./cmd/caddy
# (standard modules + extedge, Caddy pinned by go.mod) is built instead:
# same modules, same version.
#
# Usage: ./xcaddy.sh [output]      (default output: bin/caddy)
set -euo pipefail

CADDY_VERSION="v2.11.9"
MODULE="github.com/extedge/extedge"
OUT="${1:-bin/caddy}"
TAGS="nobadger,nomysql,nopgx"

cd "$(dirname "$0")"
mkdir -p "$(dirname "$OUT")"

if [[ "${XCADDY:-1}" != "0" ]] && command -v xcaddy >/dev/null 2>&1; then
	echo "xcaddy: building caddy ${CADDY_VERSION} with ${MODULE}" >&2
	CGO_ENABLED=0 XCADDY_GO_BUILD_FLAGS="-tags=${TAGS} -trimpath" \
		xcaddy build "${CADDY_VERSION}" \
		--output "${OUT}" \
		--with "${MODULE}@v0.0.0=./"
else
	echo "xcaddy not found (or XCADDY=0): go build ./cmd/caddy (caddy ${CADDY_VERSION} from go.mod)" >&2
	CGO_ENABLED=0 go build -tags "${TAGS}" -trimpath -o "${OUT}" ./cmd/caddy
fi

"${OUT}" list-modules | grep -q '^http.handlers.extedge$' || {
	echo "xcaddy.sh: ${OUT} lacks http.handlers.extedge" >&2
	exit 1
}
echo "built ${OUT}: $("${OUT}" version)" >&2
