#!/usr/bin/env bash
# Build Caddy with the extedge gateway module into bin/caddy (SPEC §12).
#
# With xcaddy on PATH (go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5)
# the module is plugged into the pinned Caddy version from this checkout:
#
#   xcaddy build v2.11.9 --with github.com/extedge/extedge/caddymodule \
#                        --replace github.com/extedge/extedge=./
#
# --with names the package to import (the module root has no package, so
# `--with github.com/extedge/extedge@v0.0.0=./` fails with "cannot find
# module providing package github.com/extedge/extedge"); --replace points
# the module at this checkout without adding an import.
#
# Without xcaddy, with XCADDY=0, or when the xcaddy build fails (e.g. no
# network for its module downloads), the checked-in main package ./cmd/caddy
# (standard modules + extedge, Caddy pinned by go.mod) is built instead:
# same modules, same version. XCADDY=1 makes an xcaddy failure fatal.
#
# Usage: ./xcaddy.sh [output]      (default output: bin/caddy)
set -euo pipefail

CADDY_VERSION="v2.11.9"
MODULE="github.com/extedge/extedge"
PLUGIN="${MODULE}/caddymodule"
OUT="${1:-bin/caddy}"
TAGS="nobadger,nomysql,nopgx"

cd "$(dirname "$0")"
mkdir -p "$(dirname "$OUT")"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

build_with_xcaddy() {
	echo "xcaddy: building caddy ${CADDY_VERSION} with ${PLUGIN}" >&2
	CGO_ENABLED=0 XCADDY_GO_BUILD_FLAGS="-tags=${TAGS} -trimpath" \
		xcaddy build "${CADDY_VERSION}" \
		--output "${OUT}" \
		--with "${PLUGIN}" \
		--replace "${MODULE}=./"
}

build_with_go() {
	echo "go build ./cmd/caddy (caddy ${CADDY_VERSION} from go.mod)" >&2
	CGO_ENABLED=0 go build -tags "${TAGS}" -trimpath -o "${OUT}" ./cmd/caddy
}

mode="${XCADDY:-auto}"
if [[ "$mode" == "0" ]] || ! command -v xcaddy >/dev/null 2>&1; then
	[[ "$mode" == "1" ]] && { echo "xcaddy.sh: XCADDY=1 but xcaddy is not on PATH" >&2; exit 1; }
	echo "xcaddy not found (or XCADDY=0)" >&2
	build_with_go
# A failing command in an `if` condition does not end the script under
# set -e, so the fallback below runs.
elif ! build_with_xcaddy; then
	[[ "$mode" == "1" ]] && { echo "xcaddy.sh: xcaddy build failed (XCADDY=1: no fallback)" >&2; exit 1; }
	echo "xcaddy.sh: xcaddy build failed; falling back to the checked-in main package" >&2
	build_with_go
fi

# Read the whole list first: `caddy list-modules | grep -q` under pipefail
# fails when grep exits early and caddy gets SIGPIPE.
modules="$("${OUT}" list-modules)"
if ! grep -qx 'http.handlers.extedge' <<<"$modules"; then
	echo "xcaddy.sh: ${OUT} lacks http.handlers.extedge" >&2
	exit 1
fi
echo "built ${OUT}: $("${OUT}" version)" >&2
