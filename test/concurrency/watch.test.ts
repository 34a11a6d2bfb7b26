import { afterAll, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { killAll, type RunningServer, sleep, startServer } from '../support/server.js'
import { type WatchEvent, WatchStream } from '../support/watch-client.js'

// The change feed under concurrency, against a real server with two handler threads: writers
// on several connections (so on both threads) set, delete and batch keys of three prefixes,
// while watchers (on both threads too) follow prefixes, and one of them keeps dropping its
// connection at random moments and resuming with Last-Event-ID. Every watcher's events must be
// exactly the changes the log committed under its prefix, in sequence order: what a watcher of
// every key, started before the writes, received; and that one must hold every acknowledged
// write, with its key, exactly once.

const seed = testSeed('watch concurrency')
const writerCount = 4
const opsPerWriter = 150
const prefixes = ['a:', 'b:', 'c:']
const waitMs = 30_000

afterAll(killAll)

interface Acknowledged {
  /** Version → key of every acknowledged set (a batch's sets too). */
  sets: Map<number, string>
  /** Key → how many deletes of it were acknowledged as deleting something. */
  deletes: Map<string, number>
}

async function writeLoad(server: RunningServer, random: () => number, ack: Acknowledged) {
  const key = () =>
    `${prefixes[Math.floor(random() * prefixes.length)]}${Math.floor(random() * 20)}`
  for (let i = 0; i < opsPerWriter; i++) {
    const dice = random()
    if (dice < 0.6) {
      const name = key()
      const response = await fetch(`${server.url}/v1/kv/${name}`, { method: 'PUT', body: `${i}` })
      ack.sets.set(((await response.json()) as { version: number }).version, name)
    } else if (dice < 0.85) {
      const name = key()
      const response = await fetch(`${server.url}/v1/kv/${name}`, { method: 'DELETE' })
      await response.arrayBuffer()
      if (response.status === 204) ack.deletes.set(name, (ack.deletes.get(name) ?? 0) + 1)
    } else {
      // A batch: its records form one group in the log, made durable together.
      const names = [key(), key(), key()]
      const response = await fetch(`${server.url}/v1/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ops: names.map((name) => ({ op: 'set', key: name, value: 'b' })) }),
      })
      const { results } = (await response.json()) as { results: { version: number }[] }
      for (const [index, result] of results.entries()) ack.sets.set(result.version, names[index]!)
    }
  }
}

/** Opens, closes and reopens one watcher at random moments; all it received, in order. */
async function flakyWatcher(
  server: RunningServer,
  random: () => number,
  after: number,
  done: () => boolean,
) {
  const received: WatchEvent[] = []
  let lastId = after
  let reconnects = 0
  for (;;) {
    const stream = new WatchStream(server.url, '?prefix=a:', { lastEventId: lastId })
    expect((await stream.opened).status).toBe(200)
    const writing = !done()
    await sleep(5 + random() * 60)
    stream.close()
    await stream.closed
    received.push(...stream.events)
    lastId = stream.lastId ?? lastId
    reconnects++
    // Once the writes are over, one last stream reads to the end.
    if (!writing) return { received, lastId, reconnects }
  }
}

it('gives every watcher, on either thread, exactly the committed changes under its prefix, in order, across random reconnects', async () => {
  const server = await startServer(['--threads', '2', '--watch-heartbeat-ms', '100'])
  const everything = new WatchStream(server.url, '')
  const watchers = prefixes.flatMap((prefix) => [
    { prefix, stream: new WatchStream(server.url, `?prefix=${prefix}`) },
    { prefix, stream: new WatchStream(server.url, `?prefix=${prefix}&values=true`) },
  ])
  for (const { stream } of [{ stream: everything }, ...watchers]) {
    expect((await stream.opened).status).toBe(200)
    await stream.until(() => stream.startId !== undefined, waitMs, 'the first block')
  }
  const start = everything.startId!
  const ack: Acknowledged = { sets: new Map(), deletes: new Map() }
  let writing = true
  const flaky = flakyWatcher(server, prng(seed + 1), start, () => !writing)
  await Promise.all(
    Array.from({ length: writerCount }, (_, i) => writeLoad(server, prng(seed + 2 + i), ack)),
  )
  writing = false
  const newest = Math.max(...ack.sets.keys())
  await everything.until(() => (everything.lastId ?? 0) >= newest, waitMs, 'the last write')

  // The watcher of every key has every acknowledged change, once, and nothing else.
  const all = everything.events
  expect(all.map((e) => e.id)).toEqual([...new Set(all.map((e) => e.id))].sort((a, b) => a - b))
  for (const [version, key] of ack.sets) {
    expect(all.find((e) => e.id === version)).toMatchObject({ event: 'set', data: { key } })
  }
  const deletes = new Map<string, number>()
  for (const event of all.filter((e) => e.event === 'delete')) {
    deletes.set(event.data.key!, (deletes.get(event.data.key!) ?? 0) + 1)
  }
  expect(deletes).toEqual(ack.deletes)
  expect(all.length).toBe(ack.sets.size + [...ack.deletes.values()].reduce((a, b) => a + b, 0))

  // Every prefix watcher: exactly the full history under its prefix, in order.
  for (const { prefix, stream } of watchers) {
    await stream.until(() => (stream.lastId ?? 0) >= newest, waitMs, `${prefix} to the end`)
    const expected = all.filter((e) => e.data.key!.startsWith(prefix)).map((e) => e.id)
    expect(stream.events.map((e) => e.id)).toEqual(expected)
  }
  const { received, reconnects, lastId } = await flaky
  console.log(
    `watch concurrency: ${all.length} changes, flaky watcher reconnected ${reconnects} times`,
  )
  expect(reconnects).toBeGreaterThan(3)
  // The last stream may end before the last change: it resumes once more to the end, from the
  // last id it had (a heartbeat's, possibly, past its last event).
  const tail = new WatchStream(server.url, '?prefix=a:', { lastEventId: lastId })
  await tail.until(() => (tail.lastId ?? 0) >= newest, waitMs, 'the flaky watcher to the end')
  received.push(...tail.events)
  const expected = all.filter((e) => e.data.key!.startsWith('a:')).map((e) => e.id)
  expect(received.map((e) => e.id)).toEqual(expected)
  for (const stream of [everything, tail, ...watchers.map((w) => w.stream)]) stream.close()
  await server.stop()
}, 120_000)
