import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { afterAll, expect, it } from 'vitest'
import { prng, testSeed } from '../support/random.js'
import { keyPath, killAll, type RunningServer, sleep, startServer } from '../support/server.js'
import { describeFinding, type Finding, History, type KeyState, type Op } from './history.js'

// SIGKILL a real server under concurrent write load, many times over one data directory, and
// prove that every acknowledged write survives. Each cycle: start `slabkv serve --data-dir DIR`
// (the default --fsync always), read back every key any client ever touched and check it
// against the clients' history (history.ts has the rules), then run the clients until a SIGKILL
// at a random moment, and start again. Keys and their history carry over from cycle to cycle.
//
// Each client owns a few keys and sends one PUT or DELETE at a time over keep-alive fetch, so
// the history of a key is a clean sequence. A request that fails (the kill resets its
// connection) leaves its operation's outcome unknown, and that client stops until the restart.
//
// The seed fixes the kill delays and each client's sequence of operations, not how the clients
// interleave with each other or with the kill: SEED= replays the same workload, not the schedule.

const seed = testSeed('crash kill')
const killCount = 30
const clientCount = 16
const keyCountPerClient = 4
const deletePerMille = 150
const killDelayMinMs = 100
const killDelayMaxMs = 700
/** A request to a killed server fails at once; this only bounds a hung one. */
const requestTimeoutMs = 5_000
const findingShownCountMax = 8
const testTimeoutMs = 110_000
const snapshotAfterSize = '48KiB'
const segmentSize = '16KiB'

const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-crash-'))

afterAll(async () => {
  // Only the servers this file started, by pid (test/support/server.ts tracks them).
  await killAll()
  rmSync(dataDir, { recursive: true, force: true })
})

/** Starts the server on the shared data directory; returns it and its spawn → 'listening' time. */
async function start(): Promise<{ server: RunningServer; startMs: number }> {
  const startedAt = performance.now()
  // startServer rejects with the server's stdout and stderr if it exits before 'listening'.
  // Small snapshot and segment thresholds, so kills also land during rotations and snapshots.
  const server = await startServer([
    '--data-dir',
    dataDir,
    '--fsync',
    'always',
    '--snapshot-after-size',
    snapshotAfterSize,
    '--segment-size',
    segmentSize,
    // A small store: each snapshot copies the whole buffer, which is sized by these limits.
    '--max-entries',
    '10000',
    '--max-memory',
    '4MiB',
  ])
  return { server, startMs: performance.now() - startedAt }
}

/** GETs every key, one at a time; anything but 200 or 404 fails the test. */
async function readAll(server: RunningServer, keys: string[]): Promise<Map<string, KeyState>> {
  const observed = new Map<string, KeyState>()
  for (const key of keys) {
    const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`, {
      signal: AbortSignal.timeout(requestTimeoutMs),
    }).catch((error: unknown) => {
      throw new Error(`GET ${key} after restart failed: ${String(error)}\n${server.stderr()}`)
    })
    const body = await response.text()
    if (response.status === 200) observed.set(key, body)
    else if (response.status === 404) observed.set(key, null)
    else throw new Error(`GET ${key} after restart answered ${response.status}: ${body}`)
  }
  return observed
}

interface Load {
  /** Set right before the SIGKILL: no client starts another operation after it. */
  killed: boolean
  /** Answers that are neither an acknowledgement nor a connection failure. */
  problems: string[]
}

/** One client: sequential PUTs (unique values) and DELETEs on its own keys until the kill. */
async function runClient(
  server: RunningServer,
  client: number,
  random: () => number,
  cycle: number,
  history: History,
  load: Load,
): Promise<void> {
  for (let n = 0; !load.killed; n++) {
    const key = `c${client}-k${Math.floor(random() * keyCountPerClient)}`
    const op: Op =
      random() * 1000 < deletePerMille
        ? { kind: 'delete' }
        : { kind: 'put', value: `${key}:${cycle}.${n}` }
    history.begin(key, op)
    let status: number
    try {
      const response = await fetch(`${server.url}/v1/kv/${keyPath(key)}`, {
        method: op.kind === 'put' ? 'PUT' : 'DELETE',
        body: op.kind === 'put' ? op.value : null,
        headers: { 'content-type': 'text/plain' },
        signal: AbortSignal.timeout(requestTimeoutMs),
      })
      // The status line is the acknowledgement; a body cut off by the kill changes nothing.
      status = response.status
      await response.arrayBuffer().catch(() => undefined)
    } catch {
      return // The outcome is unknown: the operation stays in flight until the restart's check.
    }
    if (!history.answer(key, status)) {
      load.problems.push(`client ${client}: ${op.kind} ${key} answered ${status}`)
      return
    }
  }
}

it(
  'keeps every acknowledged write through repeated SIGKILLs under concurrent load',
  async () => {
    const random = prng(seed)
    const clientRandoms = Array.from({ length: clientCount }, (_, i) => prng(seed + 1 + i))
    const history = new History()
    const findings: Finding[] = []
    const restartMs: number[] = []
    let snapshotsLoaded = 0
    let inFlightAtKillCount = 0
    let { server } = await start()

    for (let cycle = 1; cycle <= killCount; cycle++) {
      const load: Load = { killed: false, problems: [] }
      const clients = clientRandoms.map((clientRandom, client) =>
        runClient(server, client, clientRandom, cycle, history, load),
      )
      await sleep(killDelayMinMs + Math.floor(random() * (killDelayMaxMs - killDelayMinMs)))
      if (server.process.exitCode !== null || server.process.signalCode !== null) {
        throw new Error(`the server exited by itself under load\n${server.stderr()}`)
      }
      load.killed = true
      // stop() sends the signal to this child's pid and waits for its exit.
      await server.stop('SIGKILL')
      if (server.process.signalCode !== 'SIGKILL') {
        throw new Error(`the server did not die of SIGKILL\n${server.stderr()}`)
      }
      await Promise.all(clients)
      expect(load.problems, 'unexpected answers under load').toEqual([])
      inFlightAtKillCount += history.inFlightCount()

      const restart = await start()
      server = restart.server
      restartMs.push(restart.startMs)
      if (typeof server.logs.find((line) => line.msg === 'recovered')?.snapshot === 'string') {
        snapshotsLoaded++
      }
      findings.push(...history.check(cycle, await readAll(server, history.keys())))
    }
    await server.stop('SIGTERM')

    const lost = findings.filter((finding) => finding.kind === 'lost')
    const phantoms = findings.filter((finding) => finding.kind === 'phantom')
    const sortedMs = [...restartMs].sort((a, b) => a - b)
    const medianMs = sortedMs[Math.floor(sortedMs.length / 2)] ?? 0
    const maxMs = sortedMs.at(-1) ?? 0
    console.log(
      [
        `crash kill (seed ${seed}): ${killCount} kills, ${history.keys().length} keys`,
        `acknowledged writes: ${history.putAckCount + history.deleteAckCount}` +
          ` (${history.putAckCount} PUT, ${history.deleteAckCount} DELETE);` +
          ` ${inFlightAtKillCount} with unknown outcome at a kill`,
        `lost: ${lost.length}, phantoms: ${phantoms.length}`,
        `restart (spawn → 'listening'): median ${medianMs.toFixed(0)} ms, max ${maxMs.toFixed(0)} ms`,
        `restarts that loaded a snapshot: ${snapshotsLoaded}`,
      ].join('\n  '),
    )
    const shown = [...lost, ...phantoms].slice(0, findingShownCountMax).map(describeFinding)
    const message = `${lost.length} lost, ${phantoms.length} phantoms (seed ${seed}); first:\n  ${shown.join('\n  ')}\n`
    // The thresholds above are small enough that snapshots are part of what the kills hit.
    expect(snapshotsLoaded).toBeGreaterThan(0)
    expect(lost.length, message).toBe(0)
    expect(phantoms.length, message).toBe(0)
  },
  testTimeoutMs,
)
