import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'
import { type WatchEvent, WatchStream } from '../support/watch-client.js'

// SIGKILL a server in the middle of a watch stream, under write load, several times over one
// data directory; after each restart the watcher resumes with Last-Event-ID. Across all of it,
// every acknowledged write under the watched prefix must arrive exactly once, in sequence order,
// and nothing outside the prefix. A write whose answer the kill cut off may arrive or not: it
// was never acknowledged. Small segments and snapshots, so kills land on rotations too; the
// history is kept (--watch-history-size) so that a resume never meets a 410.

const seed = testSeed('watch kill')
const cycleCount = 4
const clientCount = 6
const killDelayMinMs = 200
const killDelayMaxMs = 900
const requestTimeoutMs = 5_000
const waitMs = 30_000

const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-watch-kill-'))

afterAll(async () => {
  await killAll()
  rmSync(dataDir, { recursive: true, force: true })
})

function start(): Promise<RunningServer> {
  return startServer([
    '--data-dir',
    dataDir,
    '--threads',
    '2',
    '--segment-size',
    '16KiB',
    '--snapshot-after-size',
    '48KiB',
    '--watch-history-size',
    '1GiB',
    '--watch-heartbeat-ms',
    '100',
    '--max-memory',
    '4MiB',
  ])
}

/** One client's PUTs until the kill; acknowledged ones under k: go into `acked`, version → key. */
async function client(
  server: RunningServer,
  random: () => number,
  name: string,
  acked: Map<number, string>,
  killed: () => boolean,
) {
  for (let n = 0; !killed(); n++) {
    const key = `${random() < 0.5 ? 'k' : 'x'}:${name}-${n}`
    try {
      const response = await fetch(`${server.url}/v1/kv/${key}`, {
        method: 'PUT',
        body: 'v',
        signal: AbortSignal.timeout(requestTimeoutMs),
      })
      // The status line and its ETag are the acknowledgement, whatever happens to the body.
      const version = Number(response.headers.get('etag')?.replaceAll('"', ''))
      await response.arrayBuffer().catch(() => undefined)
      if (response.status >= 300) throw new Error(`PUT ${key}: ${response.status}`)
      if (key.startsWith('k:')) acked.set(version, key)
    } catch (error) {
      if (killed() || String(error).includes('fetch failed')) return
      throw error
    }
  }
}

it('delivers every acknowledged write under the prefix exactly once across SIGKILLs and resumes', async () => {
  const random = prng(seed)
  const acked = new Map<number, string>()
  const received: WatchEvent[] = []
  let lastId = 0
  for (let cycle = 0; cycle < cycleCount; cycle++) {
    const server = await start()
    const stream = new WatchStream(server.url, '?prefix=k:', { lastEventId: lastId })
    const answer = await stream.opened
    expect(answer.status, answer.body).toBe(200)
    let killed = false
    const clients = Array.from({ length: clientCount }, (_, i) =>
      client(server, prng(seed + cycle * 100 + i), `c${cycle}.${i}`, acked, () => killed),
    )
    await sleep(killDelayMinMs + random() * (killDelayMaxMs - killDelayMinMs))
    killed = true
    await server.stop('SIGKILL')
    await Promise.all(clients)
    await stream.closed
    received.push(...stream.events)
    lastId = stream.lastId ?? lastId
  }
  const server = await start()
  const newest = Math.max(...acked.keys())
  const stream = new WatchStream(server.url, '?prefix=k:', { lastEventId: lastId })
  await stream.until(() => (stream.lastId ?? 0) >= newest, waitMs, 'the last acknowledged write')
  received.push(...stream.events)
  stream.close()
  await server.stop()

  console.log(`watch kill: ${acked.size} acknowledged writes under k:, ${received.length} events`)
  const ids = received.map((event) => event.id)
  expect(
    ids.every((id, i) => i === 0 || id > ids[i - 1]!),
    'ids strictly increase',
  ).toBe(true)
  expect(received.every((event) => event.data.key?.startsWith('k:'))).toBe(true)
  const byId = new Map(received.map((event) => [event.id, event]))
  const missing = [...acked].filter(([version, key]) => byId.get(version)?.data.key !== key)
  expect(missing, 'acknowledged writes without their event').toEqual([])
}, 120_000)
