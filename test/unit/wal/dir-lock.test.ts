import { spawn, spawnSync } from 'node:child_process'
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  DataDirInUseError,
  lockDataDir,
  lockFileName,
  readLock,
} from '../../../src/wal/dir-lock.js'

// One process per data directory (src/wal/dir-lock.ts): a live holder keeps it; the lock of a
// process that is gone, or of another boot, is taken over. Locks written as regular files (what
// an earlier version wrote, and what the stale-lock cases below plant) are read like links.

const dirs: string[] = []
const thisBoot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
const otherBoot = '00000000-0000-4000-8000-000000000000'

function dataDir(lockText?: string): { dir: string; lockPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-dir-lock-'))
  dirs.push(dir)
  const lockPath = join(dir, lockFileName)
  if (lockText !== undefined) writeFileSync(lockPath, lockText)
  return { dir, lockPath }
}

/** The pid of a process that has run and been reaped: it names no running process. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
  return Number(child.stdout.toString())
}

/** A zombie: a shell's background child that exits, under a parent (exec'd sleep) that never reaps. */
async function withZombie(body: (pid: number) => void): Promise<void> {
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'])
  try {
    const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', resolve)))
    const state = () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return stat[stat.lastIndexOf(')') + 2]
    }
    for (let waited = 0; state() !== 'Z' && waited < 5000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    expect(state()).toBe('Z')
    body(pid)
  } finally {
    parent.kill('SIGKILL')
  }
}

const ownLock = `${process.pid}\n${thisBoot}\n`

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('data directory lock', () => {
  it('names this process and boot while held, and is gone once released', () => {
    const { dir, lockPath } = dataDir()
    const unlock = lockDataDir(dir)
    expect(readLock(lockPath)).toBe(ownLock)
    unlock()
    expect(readLock(lockPath) !== undefined).toBe(false)
    // Released, it can be taken again.
    lockDataDir(dir)()
  })

  it.each([
    ['in this boot', `${process.ppid}\n${thisBoot}\n`],
    ['with no boot recorded', `${process.ppid}\n`],
  ])(
    'refuses a directory a running process holds %s, naming it, and leaves its lock alone',
    (_, text) => {
      // The test runner's main process runs for the whole test.
      const { dir, lockPath } = dataDir(text)
      expect(() => lockDataDir(dir)).toThrow(DataDirInUseError)
      expect(() => lockDataDir(dir)).toThrow(`in use by process ${process.ppid} `)
      expect(readLock(lockPath)).toBe(text)
    },
  )

  it.each([
    ['a process that has exited', () => deadPid(), thisBoot, 'its process no longer runs'],
    [
      'a running pid, but of another boot',
      () => process.ppid,
      otherBoot,
      'it names an earlier boot',
    ],
    [
      'this very process (a container restarted as the same pid)',
      () => process.pid,
      thisBoot,
      'it names this process',
    ],
  ])('takes over a lock naming %s, and says whose it was and why', (_, pid, boot, why) => {
    const previousPid = pid()
    const { dir, lockPath } = dataDir(`${previousPid}\n${boot}\n`)
    const takenOver: unknown[] = []
    const unlock = lockDataDir(dir, (stale) => takenOver.push(stale))
    expect(takenOver).toEqual([{ pid: previousPid, why }])
    expect(readLock(lockPath)).toBe(ownLock)
    unlock()
    expect(readLock(lockPath) !== undefined).toBe(false)
  })

  it.each([
    ['no process (a torn write)', ''],
    ['something that is not a pid', 'not a pid\n'],
  ])('takes over a lock naming %s, saying it named none', (_, lockText) => {
    const { dir, lockPath } = dataDir(lockText)
    const takenOver: unknown[] = []
    lockDataDir(dir, (stale) => takenOver.push(stale))()
    expect(takenOver).toEqual([undefined])
    expect(readLock(lockPath) !== undefined).toBe(false)
  })

  it('takes a free directory without reporting a takeover', () => {
    const { dir } = dataDir()
    const takenOver: unknown[] = []
    lockDataDir(dir, (stale) => takenOver.push(stale))()
    expect(takenOver).toEqual([])
  })

  it('takes over the lock of a zombie: dead, though not yet reaped', async () => {
    await withZombie((pid) => {
      const { dir, lockPath } = dataDir(`${pid}\n${thisBoot}\n`)
      lockDataDir(dir)()
      expect(readLock(lockPath) !== undefined).toBe(false)
    })
  })

  it('does not remove a lock another process took after this one', () => {
    const { dir, lockPath } = dataDir()
    const unlock = lockDataDir(dir)
    // Another process takes it over meanwhile (as if this one were gone) and holds it.
    rmSync(lockPath)
    writeFileSync(lockPath, `${process.ppid}\n${thisBoot}\n`)
    unlock()
    expect(readLock(lockPath)).toBe(`${process.ppid}\n${thisBoot}\n`)
  })

  it('is a link whose target names the holder: it needs no data block, so a full disk takes it', () => {
    const { dir, lockPath } = dataDir()
    const unlock = lockDataDir(dir)
    expect(lstatSync(lockPath).isSymbolicLink()).toBe(true)
    expect(readlinkSync(lockPath)).toBe(ownLock)
    unlock()
  })
})
