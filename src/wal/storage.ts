import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs'

// Every file operation the write-ahead log, the snapshots and recovery perform goes through this
// interface, so tests can swap the real disk for a simulated one (test/crash/simulated-disk.ts)
// that loses, tears or reorders what was not synced when a crash happens.
//
// The calls are synchronous on purpose: only the WAL writer thread (and recovery, before the
// server listens) use them, and a blocking call there stalls nobody's event loop. Errors are
// thrown as Node throws them, with `.code` ('ENOSPC', 'EIO', ...); callers decide.

export type FileDescriptor = number & { readonly brand: 'FileDescriptor' }

export interface Storage {
  mkdirp(dir: string): void
  /** File names (not paths) in `dir`, unsorted. */
  list(dir: string): string[]
  exists(path: string): boolean
  size(path: string): number
  /** The whole file. */
  read(path: string): Uint8Array
  /** Opens for appending, creating the file when absent. A new file needs syncDir to survive. */
  openAppend(path: string): FileDescriptor
  /** Appends every byte, or throws (possibly after part of them reached the file). */
  append(fd: FileDescriptor, bytes: Uint8Array): void
  /**
   * Opens an existing file to write over it in place (writeAt): its blocks, and the pages the OS
   * caches of it, are reused rather than allocated anew.
   */
  openRewrite(path: string): FileDescriptor
  /** Writes every byte at `position`, growing the file if it ends before; or throws. */
  writeAt(fd: FileDescriptor, bytes: Uint8Array, position: number): void
  /** Makes the file's data durable: what fdatasync(2) promises, and no more. */
  fdatasync(fd: FileDescriptor): void
  close(fd: FileDescriptor): void
  truncate(path: string, size: number): void
  /** Replaces `to` atomically; durable only after syncDir. */
  rename(from: string, to: string): void
  /** Durable only after syncDir. */
  unlink(path: string): void
  /** Makes the directory's entries durable: creations, renames and unlinks in it. */
  syncDir(dir: string): void
}

export const realStorage: Storage = {
  mkdirp: (dir) => {
    mkdirSync(dir, { recursive: true })
  },
  list: (dir) => readdirSync(dir),
  exists: (path) => existsSync(path),
  size: (path) => statSync(path).size,
  read: (path) => readFileSync(path),
  openAppend: (path) => openSync(path, 'a') as FileDescriptor,
  append: (fd, bytes) => writeAll(fd, bytes, null),
  openRewrite: (path) => openSync(path, 'r+') as FileDescriptor,
  writeAt: (fd, bytes, position) => writeAll(fd, bytes, position),
  fdatasync: (fd) => fdatasyncSync(fd),
  close: (fd) => closeSync(fd),
  truncate: (path, size) => truncateSync(path, size),
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  syncDir: (dir) => {
    // Linux makes a directory's entries durable through fsync on the directory itself; a file's
    // own fdatasync does not cover its name (a new file can vanish after a crash without this).
    const fd = openSync(dir, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  },
}

/** Writes every byte at `position`, or at the end (null, or a descriptor opened to append). */
function writeAll(fd: FileDescriptor, bytes: Uint8Array, position: number | null): void {
  let written = 0
  // write(2) may write less than asked (a signal, a nearly full disk); the rest follows.
  while (written < bytes.byteLength) {
    const at = position === null ? null : position + written
    written += writeSync(fd, bytes, written, bytes.byteLength - written, at)
  }
}

/** Whether a thrown error is the disk being full, which the log survives (read-only mode). */
export function isNoSpace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}
