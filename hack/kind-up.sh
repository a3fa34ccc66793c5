#!/usr/bin/env bash
# A kind cluster with everything violin needs, for development and for running
# test/e2e against real KubeVirt:
#   kind (built from its Go module) -> KubeVirt with software emulation ->
#   Multus + ovs-cni -> Open vSwitch and bridge br-violin on every node, linked
#   by VXLAN -> a snapshot-host label -> the violin image and chart from this
#   working tree -> bridges connected to the OpenFlow controller.
#
# usage: hack/kind-up.sh            (idempotent: reuses a running cluster)
# needs: docker (a running engine), go (builds kind, helm, kubectl), the
#        openvswitch kernel module on the Docker host (VXLAN between nodes).
# then:  see the last lines it prints to point test/e2e at the cluster.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/kind/versions.env
source "$here/kind/versions.env"

cluster=${VIOLIN_KIND_CLUSTER:-violin}
namespace=${VIOLIN_NAMESPACE:-violin-system}
image=${VIOLIN_IMAGE:-violin:dev}
bridge=br-violin
cache=${VIOLIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirt-violin}
out="$root/out/kind"
kubeconfig="$out/kubeconfig"

log() { echo "kind-up: $*" >&2; }
die() { echo "kind-up: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is missing: kind runs Kubernetes nodes as Docker containers"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed): start it, or run as a user in the docker group"
PATH="$PATH:/usr/local/go/bin" "$here/build-go-binaries.sh" kind helm kubectl
kind="$cache/bin/kind"
helm="$cache/bin/helm"
kubectl() { "$cache/bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

mkdir -p "$out" /tmp/violin-kind-bundles

# 1. The cluster.
if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "cluster '$cluster' exists; reusing it"
else
  log "creating cluster '$cluster'"
  create=(create cluster --name "$cluster" --config "$here/kind/cluster.yaml" --wait 5m)
  [ -n "$KIND_NODE_IMAGE" ] && create+=(--image "$KIND_NODE_IMAGE")
  "$kind" "${create[@]}"
fi
"$kind" get kubeconfig --name "$cluster" >"$kubeconfig"
mapfile -t nodes < <("$kind" get nodes --name "$cluster" | sort)
mapfile -t workers < <(printf '%s\n' "${nodes[@]}" | grep -v control-plane)
[ "${#workers[@]}" -ge 2 ] || die "expected at least two workers in hack/kind/cluster.yaml"
snapshot_host=${workers[-1]}

# 2. Open vSwitch on every node, one bridge each, a full mesh of VXLAN tunnels
#    between them (the bridges are the paper's OpenFlow switches).
# Nodes share the Docker host's kernel: its openvswitch module is the datapath.
[ -d /sys/module/openvswitch ] || modprobe openvswitch 2>/dev/null ||
  die "the openvswitch kernel module is not loaded on this Docker host: run 'sudo modprobe openvswitch'"
log "installing Open vSwitch on ${#nodes[@]} nodes"
for node in "${nodes[@]}"; do
  docker exec "$node" bash -c '
    set -euo pipefail
    if ! command -v ovs-vsctl >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq --no-install-recommends openvswitch-switch >/dev/null
    fi
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null
    ovs-vsctl --may-exist add-br '"$bridge"'
    # Secure: while a snapshot is armed, a bridge that loses the controller must
    # not fall back to forwarding on its own (DESIGN 13).
    ovs-vsctl set-fail-mode '"$bridge"' secure
    # The operator asks each node'"'"'s OVSDB which port a VM is on.
    ovs-vsctl set-manager ptcp:6640
  '
done
declare -A address
ovsdb_remotes=()
for node in "${nodes[@]}"; do
  address[$node]=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")
  ovsdb_remotes+=("tcp:${address[$node]}:6640")
done
for node in "${nodes[@]}"; do
  for peer in "${nodes[@]}"; do
    [ "$node" = "$peer" ] && continue
    port="vx-$(echo "$peer" | md5sum | cut -c1-8)"
    docker exec "$node" ovs-vsctl --may-exist add-port "$bridge" "$port" -- \
      set interface "$port" type=vxlan options:remote_ip="${address[$peer]}" options:key=4242
  done
done

# 3. KubeVirt, with software emulation: kind nodes rarely have nested KVM.
log "installing KubeVirt $KUBEVIRT_VERSION (useEmulation)"
kubevirt_release="https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION"
kubectl apply -f "$kubevirt_release/kubevirt-operator.yaml"
kubectl apply -f "$kubevirt_release/kubevirt-cr.yaml"
kubectl -n kubevirt patch kubevirt kubevirt --type=merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'

# 4. Multus (secondary networks) and ovs-cni (attach them to br-violin).
log "installing Multus $MULTUS_VERSION and ovs-cni $OVS_CNI_VERSION"
kubectl apply -f "https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/$MULTUS_VERSION/deployments/multus-daemonset-thick.yml"
curl -fsSL "https://raw.githubusercontent.com/k8snetworkplumbingwg/ovs-cni/$OVS_CNI_VERSION/examples/ovs-cni.yml" |
  sed "s#ovs-cni-plugin:latest#ovs-cni-plugin:$OVS_CNI_VERSION#g" | kubectl apply -f -

# virt-handler creates /var/run/kubevirt on the nodes, which the agent mounts.
log "waiting for KubeVirt to be available"
kubectl -n kubevirt wait kubevirt kubevirt --for=condition=Available --timeout=10m

# 5. The snapshot host.
log "labelling $snapshot_host as snapshot host"
kubectl label node "$snapshot_host" violin.dev/snapshot-host=true --overwrite

# 6. violin: the image from this working tree, and the chart.
log "building $image and loading it into the cluster"
docker build -t "$image" "$root"
"$kind" load docker-image "$image" --name "$cluster"
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
# The agent DaemonSet is privileged; the operator itself meets `restricted`.
kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=privileged --overwrite
"$helm" upgrade --install violin "$root/charts/violin" --kubeconfig "$kubeconfig" \
  --namespace "$namespace" \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --set "ovsdb.remotes={$(IFS=,; echo "${ovsdb_remotes[*]}")}" \
  --wait --timeout 5m

# 7. Every bridge to the OpenFlow controller, through the Service's cluster IP
#    (kube-proxy serves it in each node's network namespace, where OVS runs).
ofc=$(kubectl -n "$namespace" get service violin -o jsonpath='{.spec.clusterIP}')
for node in "${nodes[@]}"; do
  docker exec "$node" ovs-vsctl set-controller "$bridge" "tcp:$ofc:6653"
done
kubectl apply -n default -f "$here/kind/ovs-network.yaml"

cat >&2 <<EOT
kind-up: ready.
  export KUBECONFIG=$kubeconfig
  kubectl get nodes -L violin.dev/snapshot-host
  kubectl -n $namespace get pods
Run the end-to-end tests against this cluster instead of the lab (the e2e
globalSetup uses an existing cluster when VIOLIN_E2E_KUBECONFIG names one):
  VIOLIN_E2E_KUBECONFIG=$kubeconfig npx vitest run --project e2e
Tear down with hack/kind-down.sh.
EOT
