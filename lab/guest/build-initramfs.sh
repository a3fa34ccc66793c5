#!/bin/bash
# Builds the lab guest's initramfs: busybox, the virtio network modules of the
# host's Debian kernel (decompressed: busybox insmod cannot read .ko.xz/.ko.zst),
# the bank workload and /init. Usage: build-initramfs.sh KERNEL_VERSION OUTPUT
# Called by lab/guest/image.ts, which caches the result by the hash of its inputs.
set -euo pipefail

kver=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
busybox=${BUSYBOX:-/bin/busybox}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,lib/modules,tmp}

if ! file -L "$busybox" | grep -q 'statically linked'; then
  echo "build-initramfs: $busybox is not statically linked (install busybox-static)" >&2
  exit 1
fi
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done

for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  src=$(find "/lib/modules/$kver/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n1)
  if [ -z "$src" ]; then
    echo "build-initramfs: module $m not found for kernel $kver (install linux-image-amd64)" >&2
    exit 1
  fi
  case "$src" in
    *.xz) xz -dc "$src" >"$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$src" >"$root/lib/modules/$m.ko" ;;
    *.gz) gzip -dc "$src" >"$root/lib/modules/$m.ko" ;;
    *) cp "$src" "$root/lib/modules/$m.ko" ;;
  esac
done

(cd "$here/bank" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-buildvcs=false \
  "$go" build -trimpath -ldflags='-s -w' -o "$root/bin/bank" .)
install -m 0755 "$here/init" "$root/init"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | cpio --null --create --format=newc --quiet) | gzip -6 >"$out.tmp.$$"
# Renamed into place: a concurrent build or a reader never sees half an image.
mv "$out.tmp.$$" "$out"
