#!/usr/bin/env bash
# Builds test/status-harness (Flux's kstatus and Argo CD's Lua interpreter,
# from their Go modules) into $VIOLIN_CACHE/bin, keyed by a digest of its
# go.mod, go.sum and sources: the same harness is built once, a changed one
# again. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/../test/status-harness"
cache=${VIOLIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirt-violin}
mkdir -p "$cache/bin"

command -v go >/dev/null || { echo "hack: Go is missing: install Go >= 1.25 to build test/status-harness" >&2; exit 1; }

key=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)
out="$cache/bin/status-harness-$key"
if [ ! -x "$out" ]; then
  echo "hack: building test/status-harness ($key; first run only, a few minutes)" >&2
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp.$$" .)
  mv "$out.tmp.$$" "$out"
fi
echo "$out"
