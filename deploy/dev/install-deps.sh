#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine, if missing:
# a C toolchain (runnerd links wasmtime through cgo), PostgreSQL server
# binaries, redis-server, Chromium with a font (browser tests), systemd's
# systemd-analyze (deploy/systemd's unit test scores the units), npm (the
# browser tests install a pinned React with it, see testenv.NPMPackages) and a pinned
# MinIO built with `go install`. Idempotent and quick when all is
# present. Starts nothing: the test harness and the demo start services.
# `install-deps.sh demo` installs only what the demo uses (PostgreSQL).
set -euo pipefail
mode=${1:-test}
need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "$mode" != demo ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ "$mode" = demo ] && exit 0
gobin="$(go env GOPATH)/bin"
if ! command -v minio >/dev/null 2>&1 && [ ! -x "$gobin/minio" ]; then
  echo "install-deps: go install minio (about 2.5 minutes, once)" >&2
  go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
fi
