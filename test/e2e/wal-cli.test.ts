import { execFileSync } from 'node:child_process'
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { segmentName } from '../../src/wal/files.js'
import { freePort, keyPath, killAll, runCli, startServer } from '../support/server.js'
import { recordStarts } from '../support/wal-files.js'
import { expectJson } from './http.js'

// `slabkv wal check|repair DIR` and `slabkv serve --data-dir DIR` over damaged data directories,
// all as an operator runs them: the compiled CLI in its own process. The directory is written by
// a real server (PUTs over HTTP, then SIGTERM); each test damages a copy of it by hand: a torn
// tail is the segment truncated inside its last record, corruption a bit flipped in a record
// that valid records follow.

const root = mkdtempSync(join(tmpdir(), 'slabkv-wal-cli-'))
const pristine = join(root, 'pristine')
const segment = segmentName(1)
/** One PUT each, so entry i is record i + 1 (sequence i + 1). */
const entries = Array.from({ length: 6 }, (_, i) => [`key-${i}`, `value ${i} `.repeat(i + 1)])
/** Where each record of the segment starts; the last element is the segment's length. */
let starts: number[]
let copyCount = 0

beforeAll(async () => {
  const server = await startServer(['--data-dir', pristine])
  for (const [key, value] of entries) {
    const response = await fetch(`${server.url}/v1/kv/${keyPath(key!)}`, {
      method: 'PUT',
      body: value,
    })
    expect(response.ok, await response.text()).toBe(true)
  }
  expect(await server.stop('SIGTERM')).toBe(0)
  expect(readdirSync(pristine)).toEqual([segment])
  const bytes = readFileSync(join(pristine, segment))
  starts = recordStarts(bytes)
  expect(starts.length).toBe(entries.length + 1)
})

afterAll(async () => {
  await killAll()
  rmSync(root, { recursive: true, force: true })
})

/** A fresh copy of the server's data directory. */
function copy(): string {
  const dir = join(root, `copy-${++copyCount}`)
  cpSync(pristine, dir, { recursive: true })
  return dir
}

/** Cuts the last record short: what a crash in the middle of its write leaves. */
function tearTail(dir: string, bytesKept = 5): { offset: number; cut: number } {
  const offset = starts.at(-2)!
  truncateSync(join(dir, segment), offset + bytesKept)
  return { offset, cut: bytesKept }
}

/** Flips one bit inside record `index` (its value), which valid records follow. */
function corrupt(dir: string, index: number): { offset: number; sequence: number } {
  const path = join(dir, segment)
  const bytes = readFileSync(path)
  bytes[starts[index + 1]! - 6]! ^= 0x10
  writeFileSync(path, bytes)
  return { offset: starts[index]!, sequence: index + 1 }
}

/** Every file of a directory and its bytes, to prove a command changed nothing. */
function contents(dir: string): Record<string, Buffer> {
  const names = readdirSync(dir).sort()
  return Object.fromEntries(names.map((name) => [name, readFileSync(join(dir, name))]))
}

async function walCli(action: 'check' | 'repair', dir: string) {
  const result = await runCli(['wal', action, dir])
  return { ...result, what: `slabkv wal ${action} exited ${result.code}:\n${result.stdout}` }
}

describe('slabkv wal check', () => {
  it('exits 0 and says the state is clean on a directory a server stopped cleanly', async () => {
    const dir = copy()
    const before = contents(dir)
    const { code, stdout, what } = await walCli('check', dir)
    expect(code, what).toBe(0)
    expect(stdout, what).toContain('state: clean')
    expect(stdout, what).toContain(`last sequence: ${entries.length}`)
    expect(contents(dir)).toEqual(before)
  })

  it('exits 1 on a torn tail, names where it starts, and changes nothing', async () => {
    const dir = copy()
    const { offset, cut } = tearTail(dir)
    const before = contents(dir)
    const { code, stdout, what } = await walCli('check', dir)
    expect(code, what).toBe(1)
    expect(stdout, what).toContain(
      `state: torn tail in ${segment} at offset ${offset} (${cut} bytes)`,
    )
    expect(contents(dir)).toEqual(before)
  })

  it('exits 4 on corruption, names file, offset and sequence, and changes nothing', async () => {
    const dir = copy()
    const { offset, sequence } = corrupt(dir, 2)
    const before = contents(dir)
    const { code, stdout, what } = await walCli('check', dir)
    expect(code, what).toBe(4)
    expect(stdout, what).toContain(
      `state: CORRUPT in ${segment} at offset ${offset} (sequence ${sequence})`,
    )
    expect(contents(dir)).toEqual(before)
  })
})

describe('slabkv wal repair', () => {
  it('cuts a corrupt log at the damage, keeps every cut byte, and leaves it clean', async () => {
    const dir = copy()
    const { offset } = corrupt(dir, 2)
    const damaged = readFileSync(join(dir, segment))
    const repaired = await walCli('repair', dir)
    expect(repaired.code, repaired.what).toBe(0)
    const broken = `${segment}.at-${offset}.broken`
    expect(repaired.stdout, repaired.what).toContain(join(dir, broken))
    expect(contents(dir)).toEqual({
      [segment]: damaged.subarray(0, offset),
      [broken]: damaged.subarray(offset),
    })
    const checked = await walCli('check', dir)
    expect(checked.code, checked.what).toBe(0)
    expect(checked.stdout, checked.what).toContain('state: clean')
    expect(checked.stdout, checked.what).toContain('last sequence: 2')
  })

  it('finds nothing to repair in a clean log on a read-only mount, where it cannot lock', async (context) => {
    const dir = join(root, 'read-only')
    mkdirSync(dir)
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' })
    } catch (error) {
      const why = String((error as { stderr?: Buffer }).stderr ?? error).trim()
      context.skip(`mounting a tmpfs failed (needs root): ${why}`)
    }
    try {
      cpSync(pristine, dir, { recursive: true })
      execFileSync('mount', ['-o', 'remount,ro', dir], { stdio: 'pipe' })
      const repaired = await walCli('repair', dir)
      expect(repaired.code, repaired.what).toBe(0)
      expect(repaired.stdout, repaired.what).toContain('nothing to repair')
    } finally {
      execFileSync('umount', [dir])
    }
  })
})

describe('slabkv serve --data-dir over a damaged log', () => {
  it('refuses to start on corruption with exit code 4, then serves what precedes it once repaired', async () => {
    const dir = copy()
    const { offset, sequence } = corrupt(dir, 3)
    const before = contents(dir)
    const port = await freePort()
    const refused = await runCli([
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      dir,
    ])
    const what = `slabkv serve exited ${refused.code}:\n${refused.stdout}\n${refused.stderr}`
    expect(refused.code, what).toBe(4)
    const error = refused.logs.find((line) => line.level === 'error')
    expect(error, what).toMatchObject({ file: segment, offset, sequence })
    expect(String(error?.error), what).toContain(
      `${segment} at offset ${offset} (sequence ${sequence})`,
    )
    expect(contents(dir)).toEqual(before)

    expect((await walCli('repair', dir)).code).toBe(0)
    const server = await startServer(['--data-dir', dir])
    try {
      for (const [i, [key, value]] of entries.entries()) {
        const response = await fetch(`${server.url}/v1/kv/${keyPath(key!)}`)
        const body = await response.text()
        expect(response.status, `GET ${key}: ${body}`).toBe(i < 3 ? 200 : 404)
        if (i < 3) expect(body).toBe(value)
      }
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0)
    }
  })

  it('starts over a torn tail, warns with the bytes cut, and reports them in /v1/stats', async () => {
    const dir = copy()
    const { offset, cut } = tearTail(dir, 9)
    const server = await startServer(['--data-dir', dir])
    try {
      const warning = server.logs.find((line) => line.level === 'warn')
      expect(warning, server.stdout()).toMatchObject({
        bytes: cut,
        keptIn: [`${segment}.at-${offset}.broken`],
      })
      expect(String(warning?.msg)).toMatch(/torn tail/)
      const stats = await expectJson<{ wal: { recovery: Record<string, unknown> } }>(
        await fetch(`${server.url}/v1/stats`),
        200,
      )
      expect(stats.wal.recovery).toMatchObject({
        tornBytesCut: cut,
        recordsReplayed: entries.length - 1,
      })
      for (const [i, [key, value]] of entries.entries()) {
        const response = await fetch(`${server.url}/v1/kv/${keyPath(key!)}`)
        const body = await response.text()
        expect(response.status, `GET ${key}: ${body}`).toBe(i < entries.length - 1 ? 200 : 404)
        if (i < entries.length - 1) expect(body).toBe(value)
      }
    } finally {
      expect(await server.stop('SIGTERM')).toBe(0)
    }
    expect(readFileSync(join(dir, `${segment}.at-${offset}.broken`)).length).toBe(cut)
  })
})

describe('slabkv wal check and a start agree', () => {
  it('refuses, in both, a log whose record the limits do not allow: same file, offset, sequence', async () => {
    const dir = join(root, 'limits')
    const written = await startServer(['--data-dir', dir, '--max-value-size', '4KiB'])
    try {
      for (const [key, size] of [
        ['small', 10],
        ['large', 2048],
      ] as const) {
        const response = await fetch(`${written.url}/v1/kv/${key}`, {
          method: 'PUT',
          body: new Uint8Array(size).fill(7),
        })
        expect(response.status, await response.text()).toBe(201)
      }
    } finally {
      expect(await written.stop('SIGTERM')).toBe(0)
    }
    const before = contents(dir)
    const [logFile] = readdirSync(dir).filter((name) => name.endsWith('.log'))
    const offset = recordStarts(readFileSync(join(dir, logFile!)))[1]!

    const port = await freePort()
    const refused = await runCli([
      'serve',
      '--port',
      String(port),
      '--data-dir',
      dir,
      '--max-value-size',
      '1KiB',
    ])
    const what = `slabkv serve exited ${refused.code}:\n${refused.stdout}\n${refused.stderr}`
    expect(refused.code, what).toBe(4)
    const error = refused.logs.find((line) => line.level === 'error')
    expect(error, what).toMatchObject({ kind: 'refused', file: logFile, offset, sequence: 2 })
    expect(String(error?.error), what).toContain('--max-value-size')

    const checked = await runCli(['wal', 'check', dir, '--max-value-size', '1KiB'])
    const checkedWhat = `slabkv wal check exited ${checked.code}:\n${checked.stdout}`
    expect(checked.code, checkedWhat).toBe(4)
    expect(checked.stdout, checkedWhat).toContain(
      `state: REFUSED in ${logFile} at offset ${offset} (sequence 2)`,
    )
    expect(checked.stdout, checkedWhat).not.toContain('state: clean')
    // Repair finds nothing damaged, and cuts nothing: the records are acknowledged writes.
    const repair = await runCli(['wal', 'repair', dir, '--max-value-size', '1KiB'])
    expect(repair.code, repair.stdout).toBe(4)
    expect(contents(dir)).toEqual(before)
    // With the limits the log was written with, both are content.
    expect((await runCli(['wal', 'check', dir, '--max-value-size', '4KiB'])).code).toBe(0)
    const restarted = await startServer(['--data-dir', dir, '--max-value-size', '4KiB'])
    try {
      const response = await fetch(`${restarted.url}/v1/kv/large`)
      expect((await response.arrayBuffer()).byteLength).toBe(2048)
    } finally {
      expect(await restarted.stop('SIGTERM')).toBe(0)
    }
  })

  it('restarts on keys that begin with U+FEFF, each kept apart from the key without it', async () => {
    const dir = join(root, 'bom')
    const first = await startServer(['--data-dir', dir])
    const put = async (url: string, key: string, value: string) => {
      const response = await fetch(`${url}/v1/kv/${encodeURIComponent(key)}`, {
        method: 'PUT',
        body: value,
      })
      expect(response.status, `PUT ${JSON.stringify(key)}`).toBe(201)
    }
    try {
      await put(first.url, '\uFEFF', 'a lone BOM')
      await put(first.url, 'abc', 'REAL')
      await put(first.url, '\uFEFFabc', 'EVIL')
      await put(first.url, '\uFEFFgone', 'deleted')
      const deleted = await fetch(`${first.url}/v1/kv/${encodeURIComponent('\uFEFFgone')}`, {
        method: 'DELETE',
      })
      expect(deleted.status).toBe(204)
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0)
    }
    const checked = await runCli(['wal', 'check', dir])
    expect(checked.stdout).toContain('state: clean')
    const second = await startServer(['--data-dir', dir])
    try {
      const get = async (key: string) => {
        const response = await fetch(`${second.url}/v1/kv/${encodeURIComponent(key)}`)
        return response.status === 200 ? response.text() : response.status
      }
      expect(await get('abc')).toBe('REAL')
      expect(await get('\uFEFFabc')).toBe('EVIL')
      expect(await get('\uFEFF')).toBe('a lone BOM')
      expect(await get('\uFEFFgone')).toBe(404)
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0)
    }
  })
})

describe('damage at the end of a segment that a later one follows', () => {
  it('is corruption, not a torn tail, even when the later segment holds only its header', async () => {
    const dir = join(root, 'later-empty')
    const first = await startServer(['--data-dir', dir])
    try {
      for (const [key, value] of [
        ['a', 'one'],
        ['b', 'two'],
        ['c', 'three, acknowledged and synced'],
      ] as const) {
        const response = await fetch(`${first.url}/v1/kv/${key}`, { method: 'PUT', body: value })
        expect(response.status).toBe(201)
      }
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0)
    }
    // A restart with no write, then a clean stop: a second segment with only its header, which
    // the writer started after syncing every record of the first.
    const second = await startServer(['--data-dir', dir])
    expect(await second.stop('SIGTERM')).toBe(0)
    expect(readdirSync(dir).filter((name) => name.endsWith('.log'))).toEqual([
      segmentName(1),
      segmentName(4),
    ])
    // Bit rot in the last record of the first segment: an acknowledged write.
    const path = join(dir, segmentName(1))
    const bytes = readFileSync(path)
    bytes[recordStarts(bytes)[2]! + 40]! ^= 0x01
    writeFileSync(path, bytes)
    const before = contents(dir)

    const checked = await runCli(['wal', 'check', dir])
    expect(checked.code, checked.stdout).toBe(4)
    expect(checked.stdout).toContain(`state: CORRUPT in ${segmentName(1)}`)
    const port = await freePort()
    const refused = await runCli(['serve', '--port', String(port), '--data-dir', dir])
    expect(refused.code, refused.stdout).toBe(4)
    expect(contents(dir)).toEqual(before)
  })
})
