import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DataDirInUseError, lockDataDir, lockFileName } from '../../src/wal/dir-lock.js'

// One process per data directory (src/wal/dir-lock.ts): a live holder keeps it, a dead one's
// lock is taken over.

const dirs: string[] = []

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

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('data directory lock', () => {
  it('names this process while held and is gone once released', () => {
    const { dir, lockPath } = dataDir()
    const unlock = lockDataDir(dir)
    expect(readFileSync(lockPath, 'utf8')).toBe(`${process.pid}\n`)
    unlock()
    expect(existsSync(lockPath)).toBe(false)
    // Released, it can be taken again.
    lockDataDir(dir)()
  })

  it('refuses a directory a running process holds, naming it, and leaves its lock alone', () => {
    // The test runner's parent process runs for the whole test.
    const { dir, lockPath } = dataDir(`${process.ppid}\n`)
    expect(() => lockDataDir(dir)).toThrow(DataDirInUseError)
    expect(() => lockDataDir(dir)).toThrow(`in use by process ${process.ppid}`)
    expect(readFileSync(lockPath, 'utf8')).toBe(`${process.ppid}\n`)
  })

  it.each([
    ['a process that has exited', () => `${deadPid()}\n`],
    ['this very process (a container restarted as the same pid)', () => `${process.pid}\n`],
    ['no process (a torn write)', () => ''],
    ['something that is not a pid', () => 'not a pid\n'],
  ])('takes over a lock naming %s', (_, lockText) => {
    const { dir, lockPath } = dataDir(lockText())
    const unlock = lockDataDir(dir)
    expect(readFileSync(lockPath, 'utf8')).toBe(`${process.pid}\n`)
    unlock()
    expect(existsSync(lockPath)).toBe(false)
  })

  it('does not remove a lock another process took after this one', () => {
    const { dir, lockPath } = dataDir()
    const unlock = lockDataDir(dir)
    writeFileSync(lockPath, `${process.ppid}\n`)
    unlock()
    expect(readFileSync(lockPath, 'utf8')).toBe(`${process.ppid}\n`)
  })
})
