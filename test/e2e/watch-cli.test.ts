import { afterAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import {
  keyPath,
  killAll,
  type RunningServer,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'
import { temporaryDirs } from '../support/temp-dirs.js'
import { startWatch, stopWatchers } from '../support/watcher.js'

// docs/configuration.md, "slabkv watch": the command against real server processes. Writes come
// out as JSON lines in order; a server killed (SIGKILL) or stopped (SIGTERM) mid-stream and
// started again on the same port and data directory is waited out and resumed from, and every
// acknowledged write is printed exactly once; a position the server cannot resume from exits 6.

const requestTimeoutMs = 5_000

const dataDirs = temporaryDirs('slabkv-watch-')
const dataDir = () => dataDirs.make()

afterAll(async () => {
  await stopWatchers()
  await killAll()
  dataDirs.removeAll()
})

/** PUTs the value; its version (from the ETag), or undefined when it was not acknowledged. */
async function put(server: RunningServer, key: string, value: string): Promise<number | undefined> {
  try {
    const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'text/plain' },
      body: value,
      signal: AbortSignal.timeout(requestTimeoutMs),
    })
    await response.arrayBuffer()
    // A server that is stopping refuses writes; one being killed answers nothing.
    if (response.status !== 200 && response.status !== 201) return undefined
    return Number(JSON.parse(response.headers.get('etag') ?? 'null'))
  } catch {
    return undefined
  }
}

describe('slabkv watch against a real server', () => {
  it('prints each change under the prefix as a JSON line, in order', async () => {
    const server = await startServer(['--data-dir', dataDir()])
    const prefix = `${uniqueKey('watch')}/`
    const watcher = startWatch([prefix, '--since', '0', '--values', '--url', server.url])
    const first = await put(server, `${prefix}a`, 'one')
    await put(server, `${uniqueKey('elsewhere')}`, 'not printed')
    const second = await put(server, `${prefix}b`, 'two')
    const deleted = await fetch(`${server.url}/v1/kv/${keyPath(`${prefix}a`)}`, {
      method: 'DELETE',
      signal: AbortSignal.timeout(requestTimeoutMs),
    })
    await deleted.arrayBuffer()
    expect(deleted.status).toBeLessThan(300)

    await expect.poll(() => watcher.lines().length).toBe(3)
    const lines = watcher.lines()
    expect(lines[0]).toMatchObject({
      id: first,
      event: 'set',
      key: `${prefix}a`,
      version: first,
      size: 3,
      value: 'one',
      encoding: 'utf8',
    })
    expect(lines[1]).toMatchObject({ id: second, event: 'set', key: `${prefix}b`, value: 'two' })
    expect(lines[2]).toMatchObject({ event: 'delete', key: `${prefix}a` })
    for (const line of lines) expect(line.version).toBe(line.id)
    expect((lines[2]!.id as number) > (second as number)).toBe(true)

    watcher.child.kill('SIGTERM')
    expect(await watcher.exited, watcher.stderr()).toBe(0)
    expect(watcher.stdout().split('\n')).toHaveLength(4) // Three lines, and nothing after.
    await server.stop()
  })

  it('resumes across SIGKILLs and a SIGTERM, printing every acknowledged write once', async () => {
    const seed = testSeed('watch restarts')
    const random = prng(seed)
    const dir = dataDir()
    let server = await startServer(['--data-dir', dir])
    const port = server.port
    const prefix = `${uniqueKey('watch-restarts')}/`
    // From now, as a user runs it: only resuming from the ids the server sent can then catch up
    // on what was written while the server was away.
    const watcher = startWatch([prefix, '--url', server.url])
    const acknowledged = new Map<string, number>()
    const attempted = new Set<string>()
    let written = 0

    /** Writes one key after another until `stop` says so; a write with no answer is unknown. */
    const writeUntil = async (stop: () => boolean) => {
      while (!stop()) {
        const key = `${prefix}${written++}`
        attempted.add(key)
        const version = await put(server, key, `value ${written}`)
        if (version === undefined) return
        acknowledged.set(key, version)
      }
    }

    /** One acknowledged write, and the watcher printing it: the stream is open and flowing. */
    const writeAndSee = async (what: string) => {
      const key = `${prefix}${written++}`
      attempted.add(key)
      const version = await put(server, key, what)
      expect(version, `seed ${seed}: ${what}`).toBeDefined()
      acknowledged.set(key, version!)
      await expect
        .poll(() => watcher.lines().some((line) => line.key === key), {
          timeout: 30_000,
          message: `seed ${seed}: the watcher never printed ${key} (${what})\n${watcher.stderr()}`,
        })
        .toBe(true)
    }

    // The watch starts at the present once it is connected: write until it prints something.
    await expect
      .poll(
        async () => {
          await put(server, `${prefix}probe-${written++}`, 'probe')
          return watcher.lines().length
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBeGreaterThan(0)
    await writeAndSee('before the first stop')
    const signals = ['SIGKILL', 'SIGKILL', 'SIGTERM', 'SIGKILL'] as const
    for (const [round, signal] of signals.entries()) {
      let stopped = false
      const writing = writeUntil(() => stopped)
      await sleep(100 + Math.floor(random() * 400))
      await server.stop(signal)
      stopped = true
      await writing
      await sleep(Math.floor(random() * 300))
      server = await startServer(['--data-dir', dir], {}, { port })
      await writeAndSee(`after restart ${round} (${signal})`)
    }
    const lines = watcher.lines()
    const ids = lines.map((line) => line.id as number)
    expect(ids, 'ids strictly increase: nothing printed twice').toEqual(
      [...new Set(ids)].sort((a, b) => a - b),
    )
    const printed = new Map(lines.map((line) => [line.key as string, line]))
    expect(printed.size, 'each key written once, printed once').toBe(lines.length)
    for (const [key, version] of acknowledged) {
      expect(printed.get(key), `seed ${seed}: ${key} acknowledged at ${version}`).toMatchObject({
        event: 'set',
        version,
      })
    }
    for (const key of printed.keys()) {
      expect(attempted.has(key) || key.startsWith(`${prefix}probe-`), key).toBe(true)
    }
    expect(watcher.stderr()).toMatch(/resuming after id \d+/)

    watcher.child.kill('SIGTERM')
    expect(await watcher.exited, watcher.stderr()).toBe(0)
    await server.stop()
  })

  it('exits 6 for a position newer than anything the server has', async () => {
    const server = await startServer(['--data-dir', dataDir()])
    const watcher = startWatch(['--since', '1000000000', '--url', server.url])
    expect(await watcher.exited, watcher.stderr()).toBe(6)
    expect(watcher.stdout()).toBe('')
    expect(watcher.stderr()).toMatch(
      /\(watch_history_gone\); the oldest sequence the server holds is \d+/,
    )
    await server.stop()
  })

  it('exits 6 for a position a snapshot has taken out of the log', async () => {
    const server = await startServer([
      '--data-dir',
      dataDir(),
      '--segment-size',
      '16KiB',
      '--snapshot-after-size',
      '48KiB',
    ])
    const prefix = `${uniqueKey('watch-gone')}/`
    const value = 'x'.repeat(1024)
    // Enough log for snapshots to make the first segments redundant and delete them.
    await expect
      .poll(
        async () => {
          for (let i = 0; i < 50; i++) await put(server, `${prefix}${i}`, value)
          const response = await fetch(`${server.url}/v1/watch?since=0`, {
            signal: AbortSignal.timeout(requestTimeoutMs),
          })
          await response.body?.cancel()
          return response.status
        },
        { timeout: 30_000, interval: 10 },
      )
      .toBe(410)
    const watcher = startWatch([prefix, '--since', '0', '--url', server.url])
    expect(await watcher.exited, watcher.stderr()).toBe(6)
    expect(watcher.stdout()).toBe('')
    const oldest = /the oldest sequence the server holds is (\d+)/.exec(watcher.stderr())
    expect(Number(oldest?.[1]), watcher.stderr()).toBeGreaterThan(1)
    await server.stop()
  })

  it('exits 3 when the server refuses the token', async () => {
    const server = await startServer(['--data-dir', dataDir(), '--token', 'secret'])
    const refused = startWatch(['--url', server.url, '--token', 'wrong'])
    expect(await refused.exited, refused.stderr()).toBe(3)
    const accepted = startWatch(['--url', server.url, '--token', 'secret'])
    await sleep(500)
    expect(accepted.child.exitCode, accepted.stderr()).toBeNull()
    accepted.child.kill('SIGINT')
    expect(await accepted.exited, accepted.stderr()).toBe(0)
    await server.stop()
  })
})
