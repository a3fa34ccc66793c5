#!/usr/bin/env bash
# Installs what the lab, the tests and the benchmarks need, idempotently:
# Debian packages (only those missing), npm dependencies (only when the
# lockfile changed), and the binaries built from Go modules (cached by version).
#
# usage: hack/deps.sh [apt|npm|go|all]...   (default: all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

# Debian packages, and why each is here.
apt_packages=(
  openvswitch-switch          # ovsdb-server, ovs-vswitchd (userspace netdev datapath), ovs-vsctl, ovs-ofctl
  openvswitch-testcontroller  # ovs-testcontroller: a peer OpenFlow controller for benchmarks
  python3-os-ken              # os-ken: a peer OpenFlow controller for benchmarks
  qemu-system-x86             # the lab's VMs (TCG)
  qemu-utils
  libvirt-daemon-system       # libvirtd: the KubeVirt stand-in's virt-launcher runs one per VM (session mode)
  libvirt-clients             # virsh: the stand-in and the agent drive each launcher's libvirtd
  linux-image-amd64           # the lab VMs' kernel and its virtio_net modules
  busybox-static              # the lab VMs' userland (initramfs)
  cpio                        # packs the initramfs
  iproute2                    # network namespaces, veth, tap
  ethtool                     # TX checksum offload off on veths (userspace datapath needs it)
  iperf3                      # traffic for benchmarks
  tshark                      # independent OpenFlow 1.3 decoder for codec tests
  shellcheck                  # hack/ scripts are linted
  socat
  openssl                     # the local control plane's serving certificate
  jq
  containerd                  # the lab nodes' container runtime (one per node, own socket and root), ctr imports images
  runc                        # the OCI runtime containerd runs the chart's pods with
  containernetworking-plugins # bridge, host-local, loopback, portmap: the lab nodes' pod networks (CNI)
  buildah                     # builds the project's image from its Dockerfile, without a daemon or a registry
  mmdebstrap                  # the image's base root filesystem, from Debian packages (no registry to pull node:24-slim)
)

apt_deps() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common asks whether non-root users may capture; the answer does not matter here.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

npm_deps() {
  cd "$root"
  local stamp=node_modules/.violin-lock-stamp
  if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then return 0; fi
  echo "deps: npm ci" >&2
  npm ci --no-fund --no-audit --loglevel=error
  cp package-lock.json "$stamp"
}

# One binary per line: other targets are added here.
go_deps() {
  "$here/build-go-binaries.sh" \
    kube-apiserver \
    kubectl \
    etcd \
    helm \
    kubelet \
    kube-proxy \
    kube-controller-manager \
    kube-scheduler \
    seaweedfs
  # Flux's kstatus and Argo CD's Lua interpreter for the GitOps status tests.
  "$here/build-status-harness.sh" >/dev/null
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(all)
for w in "${what[@]}"; do
  case $w in
    apt) apt_deps ;;
    npm) npm_deps ;;
    go) go_deps ;;
    helm) "$here/build-go-binaries.sh" helm ;;
    all) apt_deps; npm_deps; go_deps ;;
    *) echo "deps: unknown group '$w'" >&2; exit 2 ;;
  esac
done
