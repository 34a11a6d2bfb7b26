import { constants } from 'node:os'
import { basename, dirname, join, normalize } from 'node:path'
import { getSystemErrorMap } from 'node:util'
import type { FileDescriptor, Storage } from '../../src/wal/storage.js'

// An in-memory Linux filesystem that is adversarial about what a power loss keeps, for tests
// that crash the write-ahead log at every operation and check what recovery makes of the rest.
//
// Every file (inode) has volatile content, which reads see, and durable content, which survives
// any crash. append and truncate change only the volatile content; fdatasync copies it to the
// durable content. Names are separate: creating, renaming and unlinking change a directory's
// volatile entries and queue the operation; syncDir makes the directory's entries durable.
//
// crash(random) builds the disk a reboot would find. For names, each queued operation survives
// or not on its own, and the survivors replay in order onto the durable entries: any subset,
// including "the unlink reached the disk, the rename before it did not". An operation applies only
// to the inode it touched, so a lost create makes a later rename of that file a no-op. For data,
// each inode keeps its durable bytes and one of: none of the unsynced bytes, a prefix torn at any
// byte, 4096-byte pages each kept or not (a lost page before a kept one reads as zeros), or all.
// An unsynced truncation is either lost with everything written after it (the file is exactly
// its durable content), or kept, and the bytes written after it then survive as above.
// A write in place (writeAt) counts as unsynced from its offset on, so a crash keeps the file's
// bytes from there as it keeps an append's: more is lost than Linux would lose (the durable
// bytes past a torn overwrite), a simplification kept because only snap.tmp, which recovery
// never reads, is written in place.
//
// Directories themselves are durable the moment mkdirp makes them. That is kinder than Linux (a
// new directory also needs its parent synced), so these tests cannot catch a missing sync of the
// parent; it keeps the model to the log's own directory, where its files live. A rename across
// directories queues an unlink in the source and a link in the target, each needing its own
// syncDir, which is what POSIX promises (ext4 happens to be kinder).

/** Thrown by every storage call once the armed crash point is reached: the process is dead. */
export class SimulatedCrash extends Error {
  constructor(operation: string) {
    super(`simulated crash before ${operation}`)
    this.name = 'SimulatedCrash'
  }
}

type Operation = keyof Storage

interface Inode {
  /** The volatile content is bytes[0, size); the buffer doubles so appends stay cheap. */
  bytes: Uint8Array
  size: number
  durable: Uint8Array
  /** Bytes from this offset on differ from the durable ones (appended or truncated since sync). */
  unsyncedStart: number
  /** Ranges a failed fdatasync dropped: like Linux since 4.13, the error is reported once, the
   *  pages are marked clean, and a later fdatasync succeeds without writing them. */
  dropped: Array<readonly [number, number]>
}

type NamespaceOp =
  | { kind: 'link'; name: string; inode: Inode }
  | { kind: 'unlink'; name: string; inode: Inode }
  | { kind: 'rename'; from: string; to: string; inode: Inode }

interface Directory {
  entries: Map<string, Inode>
  durableEntries: Map<string, Inode>
  pending: NamespaceOp[]
}

const pageSize = 4096
const errnos = constants.errno

/** An Error shaped like the ones node:fs throws (code, errno, syscall, path and message). */
function fsError(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  const errno = -(errnos[code as keyof typeof errnos] ?? 0)
  const message = `${code}: ${getSystemErrorMap().get(errno)?.[1] ?? 'simulated'}, ${syscall}`
  const error = new Error(path === undefined ? message : `${message} '${path}'`)
  return Object.assign(error, { code, errno, syscall }, path === undefined ? {} : { path })
}

function newInode(content: Uint8Array): Inode {
  const size = content.length
  return {
    bytes: content.slice(),
    size,
    durable: content.slice(),
    unsyncedStart: size,
    dropped: [],
  }
}

function directoryKey(dir: string): string {
  return normalize(dir).replace(/(.)\/+$/, '$1')
}

export class SimulatedDisk implements Storage {
  /** Total bytes across files; an append past it writes what fits and throws ENOSPC. Raising it
   *  at runtime is space returning (a log deleted, a volume grown). */
  capacityBytes = Number.POSITIVE_INFINITY
  #operationCount = 0
  #crashAtOperationCount = Number.POSITIVE_INFINITY
  #fdNext = 3
  readonly #directories = new Map<string, Directory>()
  readonly #openFiles = new Map<FileDescriptor, Inode>()
  readonly #failures = new Map<Operation, string>()

  /** A disk whose files (by path, directories made as needed) are all durable. */
  static fromFiles(files: Iterable<readonly [string, Uint8Array]>): SimulatedDisk {
    const disk = new SimulatedDisk()
    for (const [path, content] of files) disk.#place(path, newInode(content))
    return disk
  }

  /** Storage calls that ran; the calls a crash refused are not counted. */
  get operationCount(): number {
    return this.#operationCount
  }

  /** Lets `operationCount` more calls run; the next one and every later one throw SimulatedCrash. */
  armCrash(operationCount: number): void {
    this.#crashAtOperationCount = this.#operationCount + operationCount
  }

  /** The next call of `operation` throws an error with `code` before doing anything. */
  failNext(operation: Operation, code: string): void {
    this.#failures.set(operation, code)
  }

  /** The next fdatasync throws, and the bytes it should have written are never written. */
  failNextFdatasync(code = 'EIO'): void {
    this.failNext('fdatasync', code)
  }

  /** Descriptors opened and not yet closed: a leak shows here. */
  get openFileCount(): number {
    return this.#openFiles.size
  }

  /** Bytes held by files reads can reach (by a name or an open descriptor): what a disk fills. */
  get usedBytes(): number {
    const live = new Set<Inode>(this.#openFiles.values())
    for (const directory of this.#directories.values()) {
      for (const inode of directory.entries.values()) live.add(inode)
    }
    let usedBytes = 0
    for (const inode of live) usedBytes += inode.size
    return usedBytes
  }

  /** Every file reads see now, by path. */
  snapshotFiles(): Map<string, Uint8Array> {
    const files = new Map<string, Uint8Array>()
    for (const [dir, directory] of this.#directories) {
      for (const [name, inode] of directory.entries) {
        files.set(join(dir, name), inode.bytes.slice(0, inode.size))
      }
    }
    return files
  }

  /**
   * The disk a reboot after a power loss now would find, chosen by `random`. `pageHoles: false`
   * keeps unsynced appends whole or torn at a byte, never with a lost page before a kept one: what
   * ext4 (data=ordered) and XFS give appends, whose data reaches the disk before the size does.
   */
  crash(random: () => number, { pageHoles = true } = {}): SimulatedDisk {
    const disk = new SimulatedDisk()
    disk.capacityBytes = this.capacityBytes
    const survivors = new Map<Inode, Inode>()
    for (const [dir, directory] of this.#directories) {
      const entries = new Map(directory.durableEntries)
      for (const op of directory.pending) {
        if (random() < 0.5) continue
        if (op.kind === 'link') {
          entries.set(op.name, op.inode)
        } else if (op.kind === 'unlink') {
          if (entries.get(op.name) === op.inode) entries.delete(op.name)
        } else if (entries.get(op.from) === op.inode) {
          entries.delete(op.from)
          entries.set(op.to, op.inode)
        }
      }
      disk.#makeDirectories(dir)
      for (const [name, inode] of entries) {
        // A cross-directory rename can leave one inode under two names; both share its fate.
        const survivor = survivors.get(inode) ?? newInode(crashedContent(inode, random, pageHoles))
        survivors.set(inode, survivor)
        disk.#place(join(dir, name), survivor)
      }
    }
    return disk
  }

  mkdirp(dir: string): void {
    this.#begin('mkdirp')
    this.#makeDirectories(dir)
  }

  #makeDirectories(dir: string): void {
    for (let key = directoryKey(dir); !this.#directories.has(key); key = dirname(key)) {
      this.#directories.set(key, { entries: new Map(), durableEntries: new Map(), pending: [] })
    }
  }

  list(dir: string): string[] {
    this.#begin('list')
    const key = directoryKey(dir)
    const directory = this.#directory(key, 'scandir')
    const children = [...this.#directories.keys()].filter((d) => d !== key && dirname(d) === key)
    return [...directory.entries.keys(), ...children.map((d) => basename(d))]
  }

  exists(path: string): boolean {
    this.#begin('exists')
    return this.#directories.has(directoryKey(path)) || this.#lookup(path) !== undefined
  }

  size(path: string): number {
    this.#begin('size')
    return this.#file(path, 'stat').size
  }

  read(path: string): Uint8Array {
    this.#begin('read')
    const inode = this.#file(path, 'open')
    return inode.bytes.slice(0, inode.size)
  }

  openAppend(path: string): FileDescriptor {
    this.#begin('openAppend')
    if (this.#directories.has(directoryKey(path))) throw fsError('EISDIR', 'open', path)
    const directory = this.#directory(directoryKey(dirname(path)), 'open', path)
    const name = basename(path)
    let inode = directory.entries.get(name)
    if (inode === undefined) {
      inode = newInode(new Uint8Array(0))
      directory.entries.set(name, inode)
      directory.pending.push({ kind: 'link', name, inode })
    }
    const fd = this.#fdNext++ as FileDescriptor
    this.#openFiles.set(fd, inode)
    return fd
  }

  append(fd: FileDescriptor, bytes: Uint8Array): void {
    this.#begin('append')
    const inode = this.#open(fd, 'write')
    // A full disk takes what fits, as write(2) does, and the caller learns of it from the throw.
    const fitSize = Math.max(0, Math.min(bytes.length, this.capacityBytes - this.usedBytes))
    resize(inode, inode.size + fitSize)
    inode.bytes.set(bytes.subarray(0, fitSize), inode.size - fitSize)
    if (fitSize < bytes.length) throw fsError('ENOSPC', 'write')
  }

  openRewrite(path: string): FileDescriptor {
    this.#begin('openRewrite')
    const inode = this.#file(path, 'open')
    const fd = this.#fdNext++ as FileDescriptor
    this.#openFiles.set(fd, inode)
    return fd
  }

  writeAt(fd: FileDescriptor, bytes: Uint8Array, position: number): void {
    this.#begin('writeAt')
    const inode = this.#open(fd, 'write')
    if (position > inode.size) throw new Error('the simulated disk does not model holes')
    // Only growth takes space; a full disk takes what fits, as for an append.
    const growSize = Math.max(0, position + bytes.length - inode.size)
    const room = Math.max(0, this.capacityBytes - this.usedBytes)
    const fitSize = bytes.length - Math.max(0, growSize - room)
    resize(inode, Math.max(inode.size, position + fitSize))
    inode.bytes.set(bytes.subarray(0, fitSize), position)
    inode.unsyncedStart = Math.min(inode.unsyncedStart, position)
    if (fitSize < bytes.length) throw fsError('ENOSPC', 'write')
  }

  fdatasync(fd: FileDescriptor): void {
    const code = this.#begin('fdatasync', false)
    const inode = this.#open(fd, 'fdatasync')
    if (code !== undefined) {
      inode.dropped.push([inode.unsyncedStart, inode.size])
      throw fsError(code, 'fdatasync')
    }
    inode.durable = inode.bytes.slice(0, inode.size)
    // The dropped pages never reached the platter; zeros stand in for whatever was there.
    for (const [start, end] of inode.dropped) inode.durable.fill(0, start, end)
    inode.dropped = []
    inode.unsyncedStart = inode.size
  }

  close(fd: FileDescriptor): void {
    this.#begin('close')
    this.#open(fd, 'close')
    this.#openFiles.delete(fd)
  }

  truncate(path: string, size: number): void {
    this.#begin('truncate')
    const inode = this.#file(path, 'open')
    const growSize = size - inode.size
    // Only growing takes space: a shrinking truncate succeeds even on a disk fuller than its
    // capacity (a crash can bring back files whose unlink was lost).
    if (growSize > 0 && growSize > this.capacityBytes - this.usedBytes) {
      throw fsError('ENOSPC', 'ftruncate')
    }
    resize(inode, size)
  }

  rename(from: string, to: string): void {
    this.#begin('rename')
    const source = this.#directory(directoryKey(dirname(from)), 'rename', from)
    const inode = this.#file(from, 'rename')
    const target = this.#directory(directoryKey(dirname(to)), 'rename', to)
    if (this.#directories.has(directoryKey(to))) throw fsError('EISDIR', 'rename', to)
    const [fromName, toName] = [basename(from), basename(to)]
    if (source === target && fromName === toName) return
    source.entries.delete(fromName)
    target.entries.set(toName, inode)
    if (source === target) {
      source.pending.push({ kind: 'rename', from: fromName, to: toName, inode })
    } else {
      source.pending.push({ kind: 'unlink', name: fromName, inode })
      target.pending.push({ kind: 'link', name: toName, inode })
    }
  }

  unlink(path: string): void {
    this.#begin('unlink')
    const inode = this.#file(path, 'unlink')
    const directory = this.#directory(directoryKey(dirname(path)), 'unlink', path)
    // Open descriptors keep the inode alive (#openFiles holds it), as on Linux.
    directory.entries.delete(basename(path))
    directory.pending.push({ kind: 'unlink', name: basename(path), inode })
  }

  syncDir(dir: string): void {
    this.#begin('syncDir')
    const directory = this.#directory(directoryKey(dir), 'fsync', dir)
    directory.durableEntries = new Map(directory.entries)
    directory.pending = []
  }

  /** Counts the call, or refuses it: dead after the crash point, or failing once on request.
   *  fdatasync takes its failure code back instead, to drop the pages it fails to write. */
  #begin(operation: Operation, throwFailure = true): string | undefined {
    if (this.#operationCount >= this.#crashAtOperationCount) throw new SimulatedCrash(operation)
    this.#operationCount++
    const code = this.#failures.get(operation)
    this.#failures.delete(operation)
    if (code !== undefined && throwFailure) throw fsError(code, operation)
    return code
  }

  /** Puts a durable file in place without counting operations (building a disk, not using it). */
  #place(path: string, inode: Inode): void {
    this.#makeDirectories(dirname(path))
    const directory = this.#directory(directoryKey(dirname(path)), 'open')
    directory.entries.set(basename(path), inode)
    directory.durableEntries.set(basename(path), inode)
  }

  #directory(key: string, syscall: string, path = key): Directory {
    const directory = this.#directories.get(key)
    if (directory === undefined) throw fsError('ENOENT', syscall, path)
    return directory
  }

  #lookup(path: string): Inode | undefined {
    return this.#directories.get(directoryKey(dirname(path)))?.entries.get(basename(path))
  }

  #file(path: string, syscall: string): Inode {
    if (this.#directories.has(directoryKey(path))) throw fsError('EISDIR', syscall, path)
    const inode = this.#lookup(path)
    if (inode === undefined) throw fsError('ENOENT', syscall, path)
    return inode
  }

  #open(fd: FileDescriptor, syscall: string): Inode {
    const inode = this.#openFiles.get(fd)
    if (inode === undefined) throw fsError('EBADF', syscall)
    return inode
  }
}

/** Shrinks (a truncation, remembered as unsynced) or grows the volatile content, zero-filled. */
function resize(inode: Inode, size: number): void {
  if (size > inode.bytes.length) {
    const bytes = new Uint8Array(Math.max(size, 2 * inode.bytes.length))
    bytes.set(inode.bytes.subarray(0, inode.size))
    inode.bytes = bytes
  }
  if (size > inode.size) inode.bytes.fill(0, inode.size, size)
  inode.size = size
  inode.unsyncedStart = Math.min(inode.unsyncedStart, size)
}

/** What a power loss leaves of one file: its durable bytes and some of the rest (see the top). */
function crashedContent(inode: Inode, random: () => number, pageHoles: boolean): Uint8Array {
  const start = inode.unsyncedStart
  if (start < inode.durable.length && random() < 0.5) return inode.durable
  const unsynced = inode.bytes.subarray(start, inode.size)
  // Variants: none of the unsynced bytes, a prefix torn at any byte, pages with holes, all.
  const variant = pageHoles ? Math.floor(random() * 4) : [0, 1, 3][Math.floor(random() * 3)]!
  let keptSize = [0, Math.floor(random() * (unsynced.length + 1)), 0, unsynced.length][variant]!
  const content = new Uint8Array(start + unsynced.length)
  content.set(inode.durable.subarray(0, start))
  if (variant === 2) {
    // Pages follow file offsets, so the first unsynced page may begin before `start`.
    let lastFrom = 0
    for (let page = start - (start % pageSize); page < inode.size; page += pageSize) {
      if (random() < 0.5) continue
      lastFrom = Math.max(page, start) - start
      keptSize = Math.min(page + pageSize, inode.size) - start
      content.set(unsynced.subarray(lastFrom, keptSize), start + lastFrom)
    }
    // The last page kept may itself be torn, keeping at least one of its own bytes.
    if (keptSize > 0) keptSize = lastFrom + 1 + Math.floor(random() * (keptSize - lastFrom))
  } else content.set(unsynced.subarray(0, keptSize), start)
  return content.slice(0, start + keptSize)
}
