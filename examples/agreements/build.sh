#!/usr/bin/env bash
# Builds the sample extension into a signed bundle:
#
#   1. compiles guest/ to a WASI reactor, <out>/bundle/dist/main.wasm
#      (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared);
#   2. stages manifest.json, dist/ and ui/ in <out>/bundle — this source
#      directory holds Go files and must not be packed itself;
#   3. packs the stage canonically with `extctl pack` into
#      <out>/agreements.tar.zst;
#   4. signs it with `extctl sign` into <out>/SIGNATURE, using --key FILE or,
#      without one, <out>/keys/publisher.key (created on first use with
#      `extctl keygen --publisher "Acme Inc."`, the manifest's publisher).
#
# Usage: examples/agreements/build.sh [--key FILE] [--out DIR]
#   --out DIR   build directory (default: examples/agreements/build)
#   --key FILE  publisher private key (PKCS#8 PEM)
# Env: EXTCTL=path/to/extctl (default: bin/extctl if built, else it is
#      built into <out>/tools/extctl); GO=go.
#
# The content hash goes to stdout (one line), everything else to stderr,
# so `hash=$(examples/agreements/build.sh)` works. Runs from any directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/build"
key=""
GO="${GO:-go}"

while [ $# -gt 0 ]; do
	case "$1" in
	--key) key="${2:?--key needs a FILE}"; shift 2 ;;
	--key=*) key="${1#--key=}"; shift ;;
	--out) out="${2:?--out needs a DIR}"; shift 2 ;;
	--out=*) out="${1#--out=}"; shift ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
# Resolve user paths against the caller's directory before moving to the repo.
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
if [ -n "$key" ]; then
	case "$key" in /*) ;; *) key="$PWD/$key" ;; esac
	[ -r "$key" ] || { echo "build.sh: cannot read key $key" >&2; exit 1; }
fi
cd "$root"
start=$(date +%s%N)

stage="$out/bundle"
rm -rf "$stage"
mkdir -p "$stage/dist"

echo "building guest/ for wasip1 …" >&2
GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 "$GO" build -buildmode=c-shared -trimpath \
	-o "$stage/dist/main.wasm" ./examples/agreements/guest

cp "$here/manifest.json" "$stage/manifest.json"
# Copy ui/ without hidden files (editor droppings): bundles reject them.
(cd "$here" && find ui -type f ! -path '*/.*' -print) | while IFS= read -r f; do
	mkdir -p "$stage/$(dirname "$f")"
	cp "$here/$f" "$stage/$f"
done

extctl="${EXTCTL:-}"
if [ -z "$extctl" ]; then
	if [ -x "$root/bin/extctl" ]; then
		extctl="$root/bin/extctl"
	else
		extctl="$out/tools/extctl"
		echo "building extctl into $extctl …" >&2
		"$GO" build -o "$extctl" ./extctl
	fi
fi

bundle="$out/agreements.tar.zst"
hash="$("$extctl" pack "$stage" -o "$bundle")"

if [ -z "$key" ]; then
	key="$out/keys/publisher.key"
	if [ ! -f "$key" ]; then
		echo "no --key given: generating a publisher key in $out/keys" >&2
		"$extctl" keygen --out "$out/keys" --publisher "Acme Inc." >/dev/null
	fi
fi
"$extctl" sign "$bundle" --key "$key" -o "$out/SIGNATURE" >&2

ms=$(( ($(date +%s%N) - start) / 1000000 ))
wasm_size=$(wc -c <"$stage/dist/main.wasm" | tr -d ' ')
bundle_size=$(wc -c <"$bundle" | tr -d ' ')
{
	echo "dist/main.wasm  $wasm_size bytes"
	echo "bundle          $bundle ($bundle_size bytes)"
	echo "signature       $out/SIGNATURE (key $key)"
	echo "content hash    $hash"
	echo "built in        ${ms} ms"
} >&2
echo "$hash"
