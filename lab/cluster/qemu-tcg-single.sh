#!/bin/sh
# QEMU for the lab's VMs, as TCG on this machine needs it. The lab points
# VIOLIN_QEMU (src/agent/qemu/launch.ts) here, for its own processes and the
# agents it starts, and the libvirt stand-in's domains use it as their
# emulator, so both sides of every migration run the same way. exec keeps
# QEMU's PID the one the caller spawned. Two changes to the arguments:
#
# - Guest RAM 8 KiB larger than asked (`-m`, and the size of libvirt's pc.ram
#   memory backend to match). QEMU 7.2 under TCG loses guest writes in a
#   pre-copy that iterates: its word-wise dirty-bitmap sync, taken for a RAM
#   block whose length is a multiple of 256 KiB (one bitmap word of pages),
#   clears the dirty bits without putting TCG's TLB dirty tracking back, so a
#   page sent after such a sync can be written without being marked and is
#   never sent again (fixed in QEMU 9.0; docs/lab.md, "Which capture method").
#   A length that is not such a multiple takes the page-by-page sync, which
#   puts the tracking back: live migration is then correct. libvirt rounds
#   guest memory to whole MiB, so only QEMU's own arguments can do this.
# - Single-threaded TCG: chosen when multi-threaded TCG made those panics more
#   frequent; kept so that every lab QEMU runs the same way.
set -eu
PAD_KIB=8
first=1
for arg in "$@"; do
  if [ "$first" = 1 ]; then set --; first=0; fi
  case "${previous:-}" in
    -accel)
      if [ "$arg" = "tcg" ]; then arg="tcg,thread=single"; fi
      ;;
    -m)
      # `-m 128` (libvirt, MiB) or `-m 128M`; any other form is left as it is.
      case "$arg" in
        *[!0-9M]* | M* | *M*M) ;;
        *) arg="$((${arg%M} * 1024 + PAD_KIB))k" ;;
      esac
      ;;
    -object)
      case "$arg" in
        *'"id":"pc.ram"'*'"size":'*)
          size=$(printf '%s' "$arg" | sed -n 's/.*"size":\([0-9]*\).*/\1/p')
          arg=$(printf '%s' "$arg" | sed "s/\"size\":$size/\"size\":$((size + PAD_KIB * 1024))/")
          ;;
      esac
      ;;
  esac
  set -- "$@" "$arg"
  previous=$arg
done
exec "${VIOLIN_LAB_QEMU:-qemu-system-x86_64}" "$@"
