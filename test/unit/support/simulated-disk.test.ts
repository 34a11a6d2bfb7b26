import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { FileDescriptor } from '../../../src/wal/storage.js'
import { prng, testSeed } from '../../support/random.js'
import { SimulatedCrash, SimulatedDisk } from '../../support/simulated-disk.js'

// The crash tests of the log are only as strong as this model, so each promise it makes (what
// survives) and each liberty it takes (what may be lost, torn or reordered) is shown here, the
// liberties by observing every one of them across many seeded crashes.

const crashCount = 500
const seed = testSeed('simulated disk')
const dir = '/data/wal'
const path = join(dir, 'wal.0')

/** Bytes that are never zero, so a zero read back can only be a hole. */
function pattern(size: number, salt: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => ((i * 31 + salt) % 255) + 1)
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]))
}

/** Compares through Buffer: toEqual walks typed arrays element by element, too slowly for 500 crashes. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(Buffer.from(actual).equals(expected), `${actual.length} vs ${expected.length} bytes`).toBe(
    true,
  )
}

function codeOf(action: () => unknown): unknown {
  try {
    action()
  } catch (error) {
    return (error as { code?: unknown }).code ?? error
  }
  return undefined
}

/** A disk with one durable file of `synced` bytes, then `unsynced` bytes appended and not synced. */
function diskWithUnsyncedTail(synced: Uint8Array, unsynced: Uint8Array): SimulatedDisk {
  const disk = SimulatedDisk.fromFiles([[path, synced]])
  disk.append(disk.openAppend(path), unsynced)
  return disk
}

describe('SimulatedDisk data', () => {
  it('keeps synced bytes through every crash, whatever happens to what follows them', () => {
    const random = prng(seed)
    const synced = pattern(10_000, 1)
    const disk = new SimulatedDisk()
    disk.mkdirp(dir)
    const fd = disk.openAppend(path)
    disk.append(fd, synced)
    disk.fdatasync(fd)
    disk.syncDir(dir)
    disk.append(fd, pattern(9_000, 2))
    for (let i = 0; i < crashCount; i++) {
      const content = disk.crash(random).read(path)
      expectBytes(content.subarray(0, synced.length), synced)
    }
  })

  it('loses, tears at any byte, reorders by page, or keeps unsynced appends', () => {
    const random = prng(seed)
    const synced = pattern(5_000, 1)
    const unsynced = pattern(3 * 4096, 2)
    const disk = diskWithUnsyncedTail(synced, unsynced)
    const full = concat(synced, unsynced)
    const seen = new Set<string>()
    for (let i = 0; i < crashCount; i++) {
      const content = disk.crash(random).read(path)
      expect(content.length).toBeGreaterThanOrEqual(synced.length)
      expect(content.length).toBeLessThanOrEqual(full.length)
      expectBytes(content.subarray(0, synced.length), synced)
      const tail = content.subarray(synced.length)
      // Every surviving byte is the byte written there, or a zero where a page was lost.
      const foreign = tail.findIndex((byte, i) => byte !== 0 && byte !== unsynced[i])
      expect(foreign).toBe(-1)
      if (tail.length === 0) seen.add('lost')
      else if (tail.length === unsynced.length && !tail.includes(0)) seen.add('kept')
      else if (tail.includes(0)) seen.add('hole')
      else seen.add('torn')
    }
    expect([...seen].sort()).toEqual(['hole', 'kept', 'lost', 'torn'])
  })

  it('never leaves a hole in unsynced appends when told the filesystem keeps them in order', () => {
    const random = prng(seed)
    const synced = pattern(5_000, 1)
    const unsynced = pattern(3 * 4096, 2)
    const disk = diskWithUnsyncedTail(synced, unsynced)
    const seen = new Set<string>()
    for (let i = 0; i < crashCount; i++) {
      const content = disk.crash(random, { pageHoles: false }).read(path)
      const tail = content.subarray(synced.length)
      // A prefix of what was written, torn anywhere or whole: never a zero where a page was.
      expectBytes(tail, unsynced.subarray(0, tail.length))
      seen.add(tail.length === 0 ? 'lost' : tail.length === unsynced.length ? 'kept' : 'torn')
    }
    expect([...seen].sort()).toEqual(['kept', 'lost', 'torn'])
  })

  it('drops an unsynced truncation with what followed it, or keeps it', () => {
    const random = prng(seed)
    const durable = pattern(100, 1)
    const disk = SimulatedDisk.fromFiles([[path, durable]])
    disk.truncate(path, 40)
    disk.append(disk.openAppend(path), pattern(10, 2))
    const seen = new Set<string>()
    for (let i = 0; i < crashCount; i++) {
      const content = disk.crash(random).read(path)
      if (content.length === 100) {
        expect(content).toEqual(durable)
        seen.add('truncation lost')
      } else {
        expect(content.subarray(0, 40)).toEqual(durable.subarray(0, 40))
        expect(content.length).toBeLessThanOrEqual(50)
        seen.add('truncation kept')
      }
    }
    expect(seen.size).toBe(2)
  })

  it('keeps the bytes a failed fdatasync dropped out of the durable content, even after a retry', () => {
    const disk = SimulatedDisk.fromFiles([[path, pattern(3, 1)]])
    const fd = disk.openAppend(path)
    disk.append(fd, pattern(2, 2))
    disk.failNextFdatasync()
    expect(codeOf(() => disk.fdatasync(fd))).toBe('EIO')
    // The retry succeeds, as on Linux, yet the dropped pages were never written.
    expect(codeOf(() => disk.fdatasync(fd))).toBe(undefined)
    expect(disk.read(path)).toEqual(concat(pattern(3, 1), pattern(2, 2)))
    expect(disk.crash(prng(seed)).read(path)).toEqual(concat(pattern(3, 1), new Uint8Array(2)))
  })
})

describe('SimulatedDisk names', () => {
  function outcomes(disk: SimulatedDisk, describeState: (crashed: SimulatedDisk) => string) {
    const random = prng(seed)
    const seen = new Set<string>()
    for (let i = 0; i < crashCount; i++) seen.add(describeState(disk.crash(random)))
    return [...seen].sort()
  }

  function newFile(syncDir: boolean): SimulatedDisk {
    const disk = new SimulatedDisk()
    disk.mkdirp(dir)
    const fd = disk.openAppend(path)
    disk.append(fd, pattern(10, 1))
    disk.fdatasync(fd)
    if (syncDir) disk.syncDir(dir)
    return disk
  }

  it('can lose a new file whose directory was not synced, even after fdatasync', () => {
    const state = (crashed: SimulatedDisk) =>
      crashed.exists(path) ? `present ${crashed.read(path).length}` : 'gone'
    expect(outcomes(newFile(false), state)).toEqual(['gone', 'present 10'])
  })

  it('keeps a new file once its directory is synced', () => {
    const state = (crashed: SimulatedDisk) => `${crashed.read(path).length}`
    expect(outcomes(newFile(true), state)).toEqual(['10'])
  })

  it('may lose a rename made before syncDir, and keeps the content under whichever name survives', () => {
    const disk = SimulatedDisk.fromFiles([[path, pattern(10, 1)]])
    const renamed = join(dir, 'wal.1')
    disk.rename(path, renamed)
    const state = (crashed: SimulatedDisk) => {
      const files = crashed.snapshotFiles()
      for (const content of files.values()) expect(content).toEqual(pattern(10, 1))
      return [...files.keys()].join(' ')
    }
    expect(outcomes(disk, state)).toEqual([path, renamed])
    disk.syncDir(dir)
    expect(outcomes(disk, state)).toEqual([renamed])
  })

  it('can persist an unlink while losing the rename made before it', () => {
    const old = join(dir, 'old')
    const temporary = join(dir, 'next.tmp')
    const next = join(dir, 'next')
    const disk = SimulatedDisk.fromFiles([
      [old, pattern(5, 1)],
      [temporary, pattern(5, 2)],
    ])
    disk.rename(temporary, next)
    disk.unlink(old)
    const state = (crashed: SimulatedDisk) => crashed.list(dir).sort().join(' ')
    expect(outcomes(disk, state)).toEqual(['next', 'next old', 'next.tmp', 'next.tmp old'])
  })
})

describe('SimulatedDisk crash points', () => {
  // A small log workload: every call is one operation.
  function workload(disk: SimulatedDisk): void {
    disk.mkdirp(dir)
    const fd = disk.openAppend(path)
    disk.append(fd, pattern(10, 1))
    disk.fdatasync(fd)
    disk.syncDir(dir)
    disk.rename(path, join(dir, 'wal.1'))
    disk.close(fd)
  }

  it('throws SimulatedCrash at exactly the (n+1)-th operation and at every one after', () => {
    const counting = new SimulatedDisk()
    workload(counting)
    expect(counting.operationCount).toBe(7)
    for (let n = 0; n < counting.operationCount; n++) {
      const disk = new SimulatedDisk()
      disk.armCrash(n)
      expect(() => workload(disk)).toThrow(SimulatedCrash)
      expect(disk.operationCount).toBe(n)
      expect(() => disk.exists(path)).toThrow(SimulatedCrash)
      // What the dead process left is still on the disk, and a reboot can use it.
      const rebooted = disk.crash(prng(seed))
      expect(rebooted.operationCount).toBe(0)
      expect(() => rebooted.mkdirp(dir)).not.toThrow()
    }
  })

  it('lets the whole workload run when armed with its operation count', () => {
    const disk = new SimulatedDisk()
    disk.armCrash(7)
    expect(() => workload(disk)).not.toThrow()
  })
})

describe('SimulatedDisk errors', () => {
  it('writes what fits on a full disk, throws ENOSPC, and appends again once space returns', () => {
    const disk = SimulatedDisk.fromFiles([[path, pattern(4, 1)]])
    disk.capacityBytes = 10
    const fd = disk.openAppend(path)
    disk.append(fd, pattern(4, 2))
    expect(codeOf(() => disk.append(fd, pattern(4, 3)))).toBe('ENOSPC')
    expect(disk.read(path)).toEqual(concat(pattern(4, 1), pattern(4, 2), pattern(2, 3)))
    disk.capacityBytes = 20
    disk.append(fd, pattern(4, 4))
    expect(disk.size(path)).toBe(14)
  })

  it('shrinks a file even on a disk fuller than its capacity, and refuses to grow one there', () => {
    // A crash can bring back a file whose unlink was lost: usage then exceeds the capacity.
    const disk = SimulatedDisk.fromFiles([[path, pattern(40, 1)]])
    disk.capacityBytes = 10
    disk.truncate(path, 20)
    expect(disk.size(path)).toBe(20)
    expect(codeOf(() => disk.truncate(path, 21))).toBe('ENOSPC')
  })

  it('throws EIO from the next fdatasync only', () => {
    const disk = SimulatedDisk.fromFiles([[path, pattern(4, 1)]])
    const fd = disk.openAppend(path)
    disk.failNextFdatasync()
    expect(codeOf(() => disk.fdatasync(fd))).toBe('EIO')
    expect(codeOf(() => disk.fdatasync(fd))).toBe(undefined)
  })

  it('throws errors shaped like node:fs for missing files and closed descriptors', () => {
    const disk = new SimulatedDisk()
    expect(() => disk.read(path)).toThrow(
      expect.objectContaining({ code: 'ENOENT', errno: -2, syscall: 'open', path }),
    )
    expect(() => disk.read(path)).toThrow(`ENOENT: no such file or directory, open '${path}'`)
    expect(codeOf(() => disk.openAppend(path))).toBe('ENOENT')
    expect(codeOf(() => disk.append(99 as FileDescriptor, pattern(1, 1)))).toBe('EBADF')
  })

  it('keeps writing through a descriptor whose file was unlinked', () => {
    const disk = SimulatedDisk.fromFiles([[path, pattern(4, 1)]])
    const fd = disk.openAppend(path)
    disk.unlink(path)
    expect(() => disk.append(fd, pattern(4, 2))).not.toThrow()
    expect(disk.exists(path)).toBe(false)
  })
})

describe('SimulatedDisk setup', () => {
  it('builds a durable disk from files without counting operations, and reads it back', () => {
    const files = new Map([
      [path, pattern(3, 1)],
      [join(dir, 'snapshots', 'snap.0'), pattern(2, 2)],
    ])
    const disk = SimulatedDisk.fromFiles(files)
    expect(disk.operationCount).toBe(0)
    expect(disk.snapshotFiles()).toEqual(files)
    expect(disk.list(dir).sort()).toEqual(['snapshots', 'wal.0'])
    expect(disk.crash(prng(seed)).snapshotFiles()).toEqual(files)
  })

  it('catches a writer that acknowledges before fdatasync (canary)', () => {
    const random = prng(seed)
    let lostAcknowledged = 0
    for (let i = 0; i < crashCount; i++) {
      const disk = SimulatedDisk.fromFiles([[path, new Uint8Array(0)]])
      disk.append(disk.openAppend(path), pattern(20, 1)) // The planted bug: no fdatasync.
      if (disk.crash(random).size(path) < 20) lostAcknowledged++
    }
    expect(lostAcknowledged).toBeGreaterThan(0)
  })
})
