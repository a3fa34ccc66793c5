// Where the project keeps what it builds on a machine (Go-built binaries, the
// lab's guest image, the buffer middlebox): outside the work tree, so that a
// fresh clone on the same machine reuses it. Same rule as the Makefile and
// hack/build-go-binaries.sh.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export function cacheDir(): string {
  return (
    process.env.VIOLIN_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kubevirt-violin')
  );
}

/**
 * The Go toolchain that builds the project's small static helpers: $GO, `go`
 * on PATH, or Go's default install location. `purpose` says in the error what
 * needs it.
 */
export function goToolchain(purpose: string): string {
  if (process.env.GO) return process.env.GO;
  for (const dir of (process.env.PATH ?? '').split(delimiter))
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  if (existsSync('/usr/local/go/bin/go')) return '/usr/local/go/bin/go';
  throw new Error(`missing infrastructure: the Go toolchain (go ≥ 1.22) ${purpose}; install Go`);
}
