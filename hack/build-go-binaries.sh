#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd, helm, the lab nodes' kubelet,
# kube-proxy, kube-controller-manager and kube-scheduler, the SeaweedFS S3
# server the lab's object storage runs on (and, on request, kind) from their
# Go modules into a cache keyed by version. Prebuilt downloads are not an
# option on every machine this project runs on, the Go module proxy is.
#
# usage: hack/build-go-binaries.sh [kube-apiserver|kubectl|kubelet|kube-proxy|
#   kube-controller-manager|kube-scheduler|etcd|helm|kind|seaweedfs ...]
#   (no arguments: kube-apiserver kubectl etcd)
# Prints nothing but progress on stderr; the binaries land in
#   $VIOLIN_CACHE/bin/<name>-<version>  and a stable link $VIOLIN_CACHE/bin/<name>.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"
cache=${VIOLIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirt-violin}
mkdir -p "$cache/bin" "$cache/src"

command -v go >/dev/null || { echo "hack: Go is missing: install Go >= 1.25 to build the test binaries" >&2; exit 1; }

log() { echo "hack: $*" >&2; }

# A throwaway module that requires the target module. Upstream modules keep
# `replace` directives pointing into their own trees (k8s.io/kubernetes/staging,
# etcd's ../api), which `go install pkg@version` refuses; a wrapper module that
# names the published versions instead builds the same code.
wrapper() {
  local name=$1
  local dir="$cache/src/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module violin.local/%s\n\ngo 1.25\n' "$name" >"$dir/go.mod"
  echo "$dir"
}

build_kubernetes() {
  local binary=$1
  local out="$cache/bin/$binary-$KUBERNETES_VERSION"
  [ -x "$out" ] && return 0
  log "building $binary $KUBERNETES_VERSION from k8s.io/kubernetes (first run only, several minutes)"
  local dir
  dir=$(wrapper "kubernetes-$KUBERNETES_VERSION-$binary")
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  (
    cd "$dir"
    go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >kube.json
    local modfile
    modfile=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' kube.json)
    # Every staging module k8s.io/kubernetes replaces, at its published version.
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$modfile" | awk '{print $1}' | sort -u | while read -r m; do
      go mod edit -replace "$m=$m@$staging"
    done
    go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
    printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$binary" >tools.go
    sed -i '1s/^package tools/\/\/go:build tools\n\npackage tools/' tools.go
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    local pkg=k8s.io/component-base/version
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$out.tmp" \
      -ldflags "-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean" \
      "k8s.io/kubernetes/cmd/$binary"
  )
  mv "$out.tmp" "$out"
}

build_etcd() {
  local out="$cache/bin/etcd-$ETCD_VERSION"
  [ -x "$out" ] && return 0
  log "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3 (first run only)"
  local dir
  dir=$(wrapper "etcd-$ETCD_VERSION")
  (
    cd "$dir"
    go mod edit -require "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$out.tmp" "$out"
}

# SeaweedFS tags its releases without the `v` Go wants, so the module proxy
# knows it only by pseudo-version, and its go.mod keeps a `replace`
# (go-bip39), which `go install pkg@version` refuses: build `weed` from a
# wrapper module that repeats that replace.
build_seaweedfs() {
  local out="$cache/bin/weed-$SEAWEEDFS_VERSION"
  [ -x "$out" ] && return 0
  log "building weed (SeaweedFS) $SEAWEEDFS_VERSION from github.com/seaweedfs/seaweedfs (first run only: ~10 min of CPU, an hour on a busy 2-core machine)"
  local dir
  dir=$(wrapper "seaweedfs-$SEAWEEDFS_VERSION")
  (
    cd "$dir"
    go mod edit -require "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
    go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" >weed.json
    local modfile
    modfile=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' weed.json)
    # Every active `replace` of SeaweedFS's go.mod (a commented-out one starts with //).
    grep -E '^replace [^ ]+ => [^ ]+ v' "$modfile" | while read -r _ from _ to version; do
      go mod edit -replace "$from=$to@$version"
    done
    printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/seaweedfs/seaweedfs/weed"\n' >tools.go
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/seaweedfs/seaweedfs/weed
  )
  mv "$out.tmp" "$out"
}

build_plain() {
  local name=$1 module=$2 version=$3 pkg=$4
  local out="$cache/bin/$name-$version"
  [ -x "$out" ] && return 0
  log "building $name $version from $module (first run only)"
  GOBIN="$cache/src/gobin-$name" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$pkg@$version"
  mv "$cache/src/gobin-$name/$(basename "$pkg")" "$out"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kube-apiserver kubectl etcd)
# One build of a binary at a time: make test's global setup and a developer's
# `make deps` (or two worktrees sharing the cache) would otherwise write the
# same $out.tmp and remove each other's wrapper module halfway through.
exec {lock}>"$cache/bin/.build.lock"
flock "$lock"
for t in "${targets[@]}"; do
  case $t in
    kube-apiserver | kubectl | kubelet | kube-proxy | kube-controller-manager | kube-scheduler)
      build_kubernetes "$t"; version=$KUBERNETES_VERSION ;;
    etcd) build_etcd; version=$ETCD_VERSION ;;
    helm) build_plain helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; version=$HELM_VERSION ;;
    kind) build_plain kind sigs.k8s.io/kind "$KIND_VERSION" sigs.k8s.io/kind; version=$KIND_VERSION ;;
    seaweedfs) build_seaweedfs; t=weed; version=$SEAWEEDFS_VERSION ;;
    *) echo "hack: unknown binary '$t'" >&2; exit 2 ;;
  esac
  ln -sfn "$t-$version" "$cache/bin/$t"
done
