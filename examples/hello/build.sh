#!/bin/sh
# Builds dist/hello.wasm, the module the manifest's handler "dist/hello"
# names. It is a WASI reactor: the runner calls _initialize, then handler.
set -eu
cd "$(dirname "$0")"
mkdir -p dist
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o dist/hello.wasm .
ls -l dist/hello.wasm
