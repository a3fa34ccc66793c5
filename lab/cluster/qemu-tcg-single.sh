#!/bin/sh
# QEMU for the lab's VMs with single-threaded TCG. Multi-threaded TCG (QEMU's
# default for x86 guests) lost guest writes during live migration here: about one
# migration in four, under load, ended in a guest kernel panic on the target
# (corrupted lists, NULL dereferences) right after the handover. With
# thread=single the vCPU and the migration's dirty-page sync take turns under
# QEMU's big lock. The lab points VIOLIN_QEMU (src/agent/qemu/launch.ts) here,
# for its own processes and the agents it starts, so both sides of every
# migration run the same way. exec keeps QEMU's PID the one the caller spawned.
set -eu
first=1
for arg in "$@"; do
  if [ "$first" = 1 ]; then set --; first=0; fi
  if [ "${previous:-}" = "-accel" ] && [ "$arg" = "tcg" ]; then arg="tcg,thread=single"; fi
  set -- "$@" "$arg"
  previous=$arg
done
exec "${VIOLIN_LAB_QEMU:-qemu-system-x86_64}" "$@"
