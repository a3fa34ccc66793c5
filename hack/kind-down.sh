#!/usr/bin/env bash
# Deletes the kind cluster hack/kind-up.sh created. Bundles written by the
# snapshot host stay in /tmp/violin-kind-bundles (delete them by hand).
#
# usage: hack/kind-down.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cluster=${VIOLIN_KIND_CLUSTER:-violin}
cache=${VIOLIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirt-violin}
kind="$cache/bin/kind"

[ -x "$kind" ] || { echo "kind-down: $kind is missing: hack/kind-up.sh builds it (hack/build-go-binaries.sh kind)" >&2; exit 1; }
if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  "$kind" delete cluster --name "$cluster"
else
  echo "kind-down: no cluster named '$cluster'" >&2
fi
rm -f "$root/out/kind/kubeconfig"
