#!/bin/sh
# QEMU for the lab's VMs with single-threaded TCG. It was chosen when live
# migrations under multi-threaded TCG (QEMU's default for x86 guests) ended in
# guest kernel panics on the target about one time in four, and single-threaded
# TCG made that rarer. It does not remove the cause: QEMU 7.2 under TCG loses
# guest writes in any pre-copy that iterates, single-threaded or not, because
# its word-wise dirty-bitmap sync leaves the TLB's dirty tracking off (fixed in
# QEMU 9.0; docs/lab.md, "Which capture method"). The lab points VIOLIN_QEMU
# (src/agent/qemu/launch.ts) here, for its own processes and the agents it
# starts, so both sides of every migration run the same way. exec keeps QEMU's
# PID the one the caller spawned.
set -eu
first=1
for arg in "$@"; do
  if [ "$first" = 1 ]; then set --; first=0; fi
  if [ "${previous:-}" = "-accel" ] && [ "$arg" = "tcg" ]; then arg="tcg,thread=single"; fi
  set -- "$@" "$arg"
  previous=$arg
done
exec "${VIOLIN_LAB_QEMU:-qemu-system-x86_64}" "$@"
