import { Agent } from 'node:http'
import { performance } from 'node:perf_hooks'
import { afterAll, describe, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { killStarted, type Reply, send, startServer, threadCpuTicks } from './server-process.js'

// Many HTTP clients against one real server process with two handler threads. Every client works through its
// own keep-alive connection, so the kernel spreads the connections over the threads' sockets,
// on a small key space where the clients collide all the time. Each client is sequential, and
// records what the server told it and when (a monotonic clock shared by all clients):
//
//   writes   key, version, value, [start, ack]   PUT, batch set, compare-and-set increment
//   reads    key, version and value or absent     GET, batch get
//   deletes  key, removed or not, [start, ack]    DELETE, batch delete
//
// A start time is taken before the request is sent and an ack time once the whole answer is in,
// so each recorded interval contains the real one: "A before B" is only concluded from
// A.ack < B.start, which then certainly held. Versions are the store's global sequence numbers,
// so a version names exactly one write. The checks hold for any linearizable store, whatever
// the interleaving:
//
// 1. A read at version n returns exactly the value acknowledged at n for that key (never torn,
//    never another key's), and write n had started before the read ended.
// 2. A client never sees a key's version go backwards; its own write gets a newer version than
//    anything it saw before.
// 3. No read is stale. A read at version n was sent after no newer write to its key was
//    acknowledged, and after no delete was acknowledged that had been sent once write n was
//    acknowledged. A read that finds nothing, after a write was acknowledged, overlaps some
//    delete that could have followed that write.
// 4. The final state: a present key holds the highest acknowledged version with its value, and
//    no delete started after that write was acknowledged; an absent key had a delete that could
//    have come after its last write.
// 5. Each compare-and-set counter ends at exactly its number of successful increments.
// 6. After SIGTERM the server verifies its buffer: no problems, and its set and delete counters
//    (shared by all threads) equal the acknowledged sets and deletes.
//
// The seed fixes each client's sequence of operations (client i uses seed + i), not how the
// clients interleave: a replay with SEED= runs the same workload, not the same schedule.

const seed = testSeed('http clients')
const clientCount = 24
const operationCountPerClient = 300
/** The clients stop starting operations after this long, however far they got. */
const workloadTimeMaxMs = 20_000
const requestTimeoutMs = 10_000
const casAttemptMax = 30
const batchOpCountMax = 4
const valueFillerSizeMax = 600
const sharedKeys = Array.from({ length: 20 }, (_, i) => `shared/${i}`)
const counterKeys = ['counter/0', 'counter/1', 'counter/2']

interface Write {
  key: string
  version: number
  value: string
  client: number
  startMs: number
  ackMs: number
}

interface Read {
  key: string
  /** Undefined when the key was absent. */
  version: number | undefined
  value: string | undefined
  client: number
  startMs: number
  ackMs: number
}

interface Delete {
  key: string
  removed: boolean
  client: number
  startMs: number
  ackMs: number
}

interface History {
  writes: Write[]
  reads: Read[]
  deletes: Delete[]
  casIncrements: Map<string, number>
  problems: string[]
  requestCount: number
  casConflictCount: number
  casGiveUpCount: number
  batchConflictCount: number
  /** Set on the first unexpected answer or network error, so every client stops early. */
  aborted: boolean
}

function emptyHistory(): History {
  return {
    writes: [],
    reads: [],
    deletes: [],
    casIncrements: new Map(),
    problems: [],
    requestCount: 0,
    casConflictCount: 0,
    casGiveUpCount: 0,
    batchConflictCount: 0,
    aborted: false,
  }
}

function keyPath(key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`
}

function versionOfEtag(etag: string | string[] | undefined): number | undefined {
  const match = typeof etag === 'string' ? /^"(\d+)"$/.exec(etag) : null
  return match === null ? undefined : Number(match[1])
}

class UnexpectedReply extends Error {
  constructor(what: string, reply: Reply) {
    super(`${what}: unexpected ${reply.status} ${reply.body.slice(0, 200)}`)
  }
}

/** One client: a sequential loop of operations over its own keep-alive connection. */
class Client {
  readonly #id: number
  readonly #port: number
  readonly #history: History
  readonly #random: () => number
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 })
  /** The newest version this client has seen for each key. */
  readonly #seen = new Map<string, number>()
  #valueCount = 0

  constructor(id: number, port: number, history: History) {
    this.#id = id
    this.#port = port
    this.#history = history
    this.#random = prng(seed + id)
  }

  async run(deadlineMs: number): Promise<void> {
    try {
      for (let operation = 0; operation < operationCountPerClient; operation++) {
        if (this.#history.aborted || performance.now() > deadlineMs) break
        const choice = this.#random()
        if (choice < 0.3) await this.put(this.#pick(sharedKeys))
        else if (choice < 0.55) await this.get(this.#pick(sharedKeys))
        else if (choice < 0.65) await this.delete(this.#pick(sharedKeys))
        else if (choice < 0.8) await this.increment(this.#pick(counterKeys))
        else await this.batch()
      }
    } catch (error) {
      this.#history.problems.push(`client ${this.#id}: ${(error as Error).message}`)
      this.#history.aborted = true
    } finally {
      this.close()
    }
  }

  /** Closes the kept-alive connection, so the server's drain on SIGTERM has nothing to wait for. */
  close() {
    this.#agent.destroy()
  }

  async put(key: string, headers: Record<string, string> = {}, value = this.#newValue()) {
    const startMs = performance.now()
    const reply = await this.#send('PUT', keyPath(key), { headers, body: value })
    const ackMs = performance.now()
    if (reply.status === 412) return undefined
    if (reply.status !== 200 && reply.status !== 201) throw new UnexpectedReply(`PUT ${key}`, reply)
    const version = (JSON.parse(reply.body) as { version: number }).version
    if (versionOfEtag(reply.headers.etag) !== version) {
      throw new Error(`PUT ${key}: ETag ${reply.headers.etag} but body version ${version}`)
    }
    this.#wrote({ key, version, value, client: this.#id, startMs, ackMs })
    return version
  }

  async get(key: string): Promise<Read> {
    const startMs = performance.now()
    const reply = await this.#send('GET', keyPath(key), {})
    const ackMs = performance.now()
    let read: Read
    if (reply.status === 404) {
      read = { key, version: undefined, value: undefined, client: this.#id, startMs, ackMs }
    } else if (reply.status === 200) {
      const version = versionOfEtag(reply.headers.etag)
      if (version === undefined) throw new Error(`GET ${key}: ETag ${reply.headers.etag}`)
      read = { key, version, value: reply.body, client: this.#id, startMs, ackMs }
    } else {
      throw new UnexpectedReply(`GET ${key}`, reply)
    }
    this.#read(read)
    return read
  }

  async delete(key: string) {
    const startMs = performance.now()
    const reply = await this.#send('DELETE', keyPath(key), {})
    const ackMs = performance.now()
    if (reply.status !== 204 && reply.status !== 404) {
      throw new UnexpectedReply(`DELETE ${key}`, reply)
    }
    this.#history.deletes.push({
      key,
      removed: reply.status === 204,
      client: this.#id,
      startMs,
      ackMs,
    })
  }

  /** Compare-and-set: read the counter, write it plus one at the version read, retry on 412. */
  async increment(key: string) {
    for (let attempt = 0; attempt < casAttemptMax; attempt++) {
      const read = await this.get(key)
      const count = read.value === undefined ? 0 : Number(read.value)
      if (!Number.isSafeInteger(count)) throw new Error(`counter ${key} holds ${read.value}`)
      const condition: Record<string, string> =
        read.version === undefined ? { 'If-None-Match': '*' } : { 'If-Match': `"${read.version}"` }
      const version = await this.put(key, condition, String(count + 1))
      if (version !== undefined) {
        const increments = this.#history.casIncrements
        increments.set(key, (increments.get(key) ?? 0) + 1)
        return
      }
      this.#history.casConflictCount += 1
    }
    this.#history.casGiveUpCount += 1
  }

  /** A few ops on shared keys; sometimes the first set is conditional on the last version seen. */
  async batch() {
    const opCount = 2 + Math.floor(this.#random() * (batchOpCountMax - 1))
    const ops: Record<string, unknown>[] = []
    for (let i = 0; i < opCount; i++) {
      const key = this.#pick(sharedKeys)
      const choice = this.#random()
      if (choice < 0.4) ops.push({ op: 'get', key })
      else if (choice < 0.8) ops.push({ op: 'set', key, value: this.#newValue() })
      else ops.push({ op: 'delete', key })
    }
    const firstSet = ops.find((op) => op.op === 'set')
    const seenVersion = firstSet === undefined ? undefined : this.#seen.get(firstSet.key as string)
    if (firstSet !== undefined && seenVersion !== undefined && this.#random() < 0.3) {
      firstSet.ifVersion = seenVersion
    }
    const startMs = performance.now()
    const reply = await this.#send('POST', '/v1/batch', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ops }),
    })
    const ackMs = performance.now()
    if (reply.status === 412) {
      this.#history.batchConflictCount += 1
      return
    }
    if (reply.status !== 200) throw new UnexpectedReply('POST /v1/batch', reply)
    const { results } = JSON.parse(reply.body) as { results: Record<string, unknown>[] }
    if (results.length !== ops.length) throw new Error(`batch: ${results.length} results`)
    for (const [index, op] of ops.entries()) {
      const result = results[index]!
      const key = op.key as string
      const client = this.#id
      if (op.op === 'set') {
        const version = result.version as number
        this.#wrote({ key, version, value: op.value as string, client, startMs, ackMs })
      } else if (op.op === 'delete') {
        this.#history.deletes.push({
          key,
          removed: result.deleted === true,
          client,
          startMs,
          ackMs,
        })
      } else if (result.found === false) {
        this.#read({ key, version: undefined, value: undefined, client, startMs, ackMs })
      } else {
        if (result.encoding !== 'utf8') throw new Error(`batch get ${key}: ${result.encoding}`)
        const version = result.version as number
        this.#read({ key, version, value: result.value as string, client, startMs, ackMs })
      }
    }
  }

  #wrote(write: Write) {
    this.#observe(write.key, write.version, 'its write was acknowledged at', true)
    this.#history.writes.push(write)
  }

  #read(read: Read) {
    if (read.version !== undefined) this.#observe(read.key, read.version, 'it read', false)
    this.#history.reads.push(read)
  }

  /** Check 2: a client's own write is newer than anything it saw; a read is no older. */
  #observe(key: string, version: number, what: string, strictlyNewer: boolean) {
    const seen = this.#seen.get(key)
    if (seen !== undefined && (strictlyNewer ? version <= seen : version < seen)) {
      this.#history.problems.push(
        `client ${this.#id} saw ${key} at version ${seen}, then ${what} version ${version}`,
      )
    }
    this.#seen.set(key, Math.max(seen ?? 0, version))
  }

  /** A value no other write uses: client id and counter, then a filler of random size. */
  #newValue(): string {
    const size = Math.floor(this.#random() ** 2 * valueFillerSizeMax)
    let filler = ''
    for (let i = 0; i < size; i++)
      filler += String.fromCharCode(97 + Math.floor(this.#random() * 26))
    return `c${this.#id}-${this.#valueCount++}:${filler}`
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!
  }

  #send(
    method: string,
    path: string,
    options: { headers?: Record<string, string>; body?: string },
  ) {
    this.#history.requestCount += 1
    return send(this.#agent, this.#port, method, path, { ...options, timeoutMs: requestTimeoutMs })
  }
}

/** Checks 1 and 3-5 against the history; finalReads are among its reads too. Returns what failed. */
function checkHistory(history: History, finalReads: Read[]): string[] {
  const problems: string[] = []
  const writeOf = new Map<number, Write>()
  const writesOf = new Map<string, Write[]>()
  for (const write of history.writes) {
    const earlier = writeOf.get(write.version)
    if (earlier !== undefined) {
      problems.push(`version ${write.version} acknowledged twice: ${earlier.key}, ${write.key}`)
    }
    writeOf.set(write.version, write)
    writesOf.set(write.key, [...(writesOf.get(write.key) ?? []), write])
  }
  const deletesOf = new Map<string, Delete[]>()
  for (const del of history.deletes)
    deletesOf.set(del.key, [...(deletesOf.get(del.key) ?? []), del])

  // Check 1: every value read was written at that version to that key, before the read ended.
  for (const read of history.reads) {
    if (read.version === undefined) continue
    const write = writeOf.get(read.version)
    const where = `client ${read.client} read ${read.key} at version ${read.version}`
    if (write === undefined) problems.push(`${where}, which no write was acknowledged at`)
    else if (write.key !== read.key)
      problems.push(`${where}, the version of a write to ${write.key}`)
    else if (write.value !== read.value) {
      problems.push(
        `${where}: ${abbreviate(read.value)}, not the value written ${abbreviate(write.value)}`,
      )
    } else if (write.startMs > read.ackMs) {
      problems.push(`${where} before that write was sent`)
    }
  }

  // Check 3: no read is stale. An operation acknowledged before the read was sent took effect
  // before it; one sent after write n was acknowledged took effect after write n.
  for (const read of history.reads) {
    if (read.version === undefined) continue
    const where = `client ${read.client} read ${read.key} at version ${read.version}`
    const newer = (writesOf.get(read.key) ?? []).find(
      (write) => write.version > read.version! && write.ackMs < read.startMs,
    )
    if (newer !== undefined) {
      problems.push(`${where}, after version ${newer.version} was acknowledged`)
      continue
    }
    const write = writeOf.get(read.version)
    const deleted = (deletesOf.get(read.key) ?? []).some(
      (del) => write !== undefined && del.startMs > write.ackMs && del.ackMs < read.startMs,
    )
    if (deleted) problems.push(`${where}, after a delete that followed that write`)
  }
  for (const read of history.reads) {
    if (read.version !== undefined) continue
    const before = (writesOf.get(read.key) ?? []).filter((write) => write.ackMs < read.startMs)
    if (before.length === 0) continue
    const latestStartMs = Math.max(...before.map((write) => write.startMs))
    const covered = (deletesOf.get(read.key) ?? []).some(
      (del) => del.removed && del.startMs <= read.ackMs && del.ackMs >= latestStartMs,
    )
    if (!covered) {
      problems.push(
        `client ${read.client} found no ${read.key} after a write to it was acknowledged, and no delete could explain it`,
      )
    }
  }

  // Check 4: the final state against the last acknowledged write of each key.
  for (const final of finalReads) {
    const writes = writesOf.get(final.key) ?? []
    const last = writes.reduce<Write | undefined>(
      (newest, write) => (newest === undefined || write.version > newest.version ? write : newest),
      undefined,
    )
    const deletes = deletesOf.get(final.key) ?? []
    if (final.version !== undefined) {
      if (last === undefined || final.version !== last.version) {
        problems.push(
          `${final.key} ends at version ${final.version}; the newest acknowledged is ${last?.version}`,
        )
      } else if (deletes.some((del) => del.startMs > last.ackMs)) {
        problems.push(
          `${final.key} ends at version ${last.version}, but a delete was sent after that write was acknowledged`,
        )
      }
    } else if (
      last !== undefined &&
      !deletes.some((del) => del.removed && del.ackMs >= last.startMs)
    ) {
      problems.push(
        `${final.key} is gone, but no delete could have come after version ${last.version}`,
      )
    }
  }

  // Check 5: each compare-and-set counter holds its number of successful increments.
  for (const key of counterKeys) {
    const final = finalReads.find((read) => read.key === key)
    const expected = history.casIncrements.get(key)
    const actual = final?.value === undefined ? undefined : Number(final.value)
    if (actual !== expected) {
      problems.push(`${key} ends at ${actual}, but ${expected ?? 0} increments succeeded`)
    }
  }
  return problems
}

function abbreviate(value: string | undefined): string {
  if (value === undefined) return 'nothing'
  return value.length <= 40 ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, 40))}…`
}

afterAll(async () => {
  await killStarted()
})

describe('HTTP clients through the handler threads', () => {
  // The canary: a checker that cannot fail proves nothing.
  it('the history checks catch torn, foreign and stale reads, a lost write, a stale final state and a miscounted counter', () => {
    const at = (startMs: number) => ({ client: 0, startMs, ackMs: startMs + 1 })
    const absent = { version: undefined, value: undefined }
    const writes: Write[] = [
      { key: 'k', version: 1, value: 'a', ...at(0) },
      { key: 'k', version: 3, value: 'b', ...at(2) },
      { key: 'counter/0', version: 4, value: '1', ...at(4) },
      { key: 'j', version: 5, value: 'c', ...at(30) },
    ]
    const counterFinal: Read = { key: 'counter/0', version: 4, value: '1', ...at(20) }

    const planted = emptyHistory()
    planted.writes.push(...writes)
    planted.casIncrements.set('counter/0', 2)
    planted.deletes.push({ key: 'j', removed: true, ...at(32) })
    const plantedFinal: Read[] = [{ key: 'k', version: 1, value: 'a', ...at(20) }, counterFinal]
    planted.reads.push(
      { key: 'k', version: 3, value: 'bb', ...at(6) },
      { key: 'k', version: 4, value: '1', ...at(8) },
      { key: 'k', ...absent, ...at(10) },
      { key: 'k', version: 1, value: 'a', ...at(12) },
      { key: 'j', version: 5, value: 'c', ...at(34) },
      ...plantedFinal,
    )
    expect(checkHistory(planted, plantedFinal)).toEqual([
      'client 0 read k at version 3: "bb", not the value written "b"',
      'client 0 read k at version 4, the version of a write to counter/0',
      'client 0 read k at version 1, after version 3 was acknowledged',
      'client 0 read j at version 5, after a delete that followed that write',
      'client 0 read k at version 1, after version 3 was acknowledged',
      'client 0 found no k after a write to it was acknowledged, and no delete could explain it',
      'k ends at version 1; the newest acknowledged is 3',
      'counter/0 ends at 1, but 2 increments succeeded',
    ])

    // The same writes, and a delete that overlaps the empty read and may follow the last write.
    const sound = emptyHistory()
    sound.writes.push(...writes)
    sound.deletes.push({ key: 'k', removed: true, ...at(9) })
    sound.casIncrements.set('counter/0', 1)
    const soundFinal: Read[] = [{ key: 'k', ...absent, ...at(20) }, counterFinal]
    sound.reads.push(
      { key: 'k', version: 3, value: 'b', ...at(6) },
      { key: 'k', ...absent, ...at(10) },
      ...soundFinal,
    )
    expect(checkHistory(sound, soundFinal)).toEqual([])
  })

  it('many HTTP clients on shared keys through all handler threads agree with the final state', async () => {
    const server = await startServer(['--threads', '2', '--max-entries', '10000'], {
      SLABKV_VERIFY_ON_EXIT: '1',
    })
    const { threads, node } = server.listening
    console.log(`http clients: server ${node} with ${threads} handler thread(s)`)
    expect(threads).toBe(2)

    const history = emptyHistory()
    const ticksBefore = threadCpuTicks(server.pid, 'WorkerThread')
    const startMs = performance.now()
    const clients = Array.from(
      { length: clientCount },
      (_, id) => new Client(id, server.port, history),
    )
    await Promise.all(clients.map((client) => client.run(startMs + workloadTimeMaxMs)))
    const workloadMs = performance.now() - startMs
    const ticksAfter = threadCpuTicks(server.pid, 'WorkerThread')
    if (ticksBefore !== undefined && ticksAfter !== undefined) {
      // The kernel spreads the clients' connections over the threads' sockets (reusePort); with
      // 24 connections, all of them landing on one thread is a 1 in 2^23 event.
      const busy = [...ticksAfter].map(([tid, ticks]) => ticks - (ticksBefore.get(tid) ?? 0))
      console.log(
        `http clients: CPU ticks of each worker thread during the workload: ${busy.join(', ')}`,
      )
      expect(busy.filter((ticks) => ticks > 0).length).toBeGreaterThanOrEqual(2)
    }
    expect(history.problems, 'the clients were told something impossible').toEqual([])

    // The final state, read by one more client once every other one has finished.
    const finalClient = new Client(clientCount, server.port, history)
    const finalReads: Read[] = []
    for (const key of [...sharedKeys, ...counterKeys]) finalReads.push(await finalClient.get(key))
    finalClient.close()

    const setCount = history.writes.length
    const deleteCount = history.deletes.filter((del) => del.removed).length
    console.log(
      `http clients: ${history.requestCount} requests in ${Math.round(workloadMs)} ms; ` +
        `${setCount} sets, ${deleteCount} deletes, ${history.reads.length} reads; ` +
        `compare-and-set ${[...history.casIncrements.values()].reduce((a, b) => a + b, 0)} done, ` +
        `${history.casConflictCount} conflicts, ${history.casGiveUpCount} given up; ` +
        `${history.batchConflictCount} batches refused`,
    )
    expect(checkHistory(history, finalReads).slice(0, 20)).toEqual([])

    const exitCode = await server.stop()
    expect(exitCode, server.output()).toBe(0)
    const verified = server.logs.find((line) => line.msg === 'verified')
    expect(verified, server.output()).toBeDefined()
    const stats = verified!.stats as Record<string, number>
    expect(verified!.problems).toEqual([])
    expect(stats.sets, 'sets counted by the server against sets acknowledged').toBe(setCount)
    expect(stats.deletes, 'deletes counted by the server against deletes acknowledged').toBe(
      deleteCount,
    )
    expect(stats.evictions).toBe(0)
  }, 90_000)
})
