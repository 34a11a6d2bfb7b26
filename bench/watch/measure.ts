import { type Load, type Measurement, measureLoad, processesCpuS } from '../measure.js'
import type { RunningSystem } from '../systems.js'
import { runWrk } from '../wrk.js'
import type { WatcherProcesses } from './clients.js'

// One measurement of each kind in bench:watch, and the checks that make it count.
//
// writes: N watchers of prefix busy: are opened and have their first block; a start marker is
// written (its version v0) and the server's change counters read; wrk loads PUT busy:<n>; once
// it has exited (and a moment for requests the server still had), an end marker (v1) and the
// counters again. Every watcher must then reach v1, and hold exactly the events the counters
// say the server made in (v0, v1] — those wrk saw acknowledged and those in flight when it
// stopped — with ids strictly increasing, and every watcher the same ids (their sums agree).

export interface Counters {
  /** sets + deletes + evictions + expirations: each is one event under its key. */
  changes: number
  /** The numbers in the stats' watch section, if the server has one (flattened). */
  watch: Record<string, number>
  groupCommits: number
  recordsWritten: number
}

export async function counters(url: string): Promise<Counters> {
  const stats = (await (await fetch(`${url}/v1/stats`)).json()) as Record<string, unknown>
  const n = (name: string) => Number(stats[name] ?? 0)
  const watch: Record<string, number> = {}
  const flatten = (value: unknown, path: string) => {
    if (typeof value === 'number') watch[path] = value
    else if (typeof value === 'object' && value !== null)
      for (const [k, v] of Object.entries(value)) flatten(v, path === '' ? k : `${path}.${k}`)
  }
  flatten(stats.watch, '')
  const wal = (stats.wal ?? {}) as Record<string, unknown>
  return {
    changes: n('sets') + n('deletes') + n('evictions') + n('expirations'),
    watch,
    groupCommits: Number(wal.groupCommits ?? 0),
    recordsWritten: Number(wal.recordsWritten ?? 0),
  }
}

export async function putMarker(url: string, key: string): Promise<number> {
  const response = await fetch(`${url}/v1/kv/${key}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: 'marker',
  })
  const text = await response.text()
  const version = /^\{"version":(\d+)/.exec(text)?.[1]
  if (!response.ok || version === undefined)
    throw new Error(`PUT ${key}: ${response.status} ${text}`)
  return Number(version)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface WritesRun extends Measurement {
  watcherCount: number
  /** Changes the server made between the markers, end marker included. */
  serverChanges: number
  /** CPU of the watchers' processes during the load, in seconds. */
  watcherCpuS: number | null
  /** Events/s each watcher received during the load (median over watchers), null if none. */
  liveEventsPerSecond: number | null
  /** Events per read of a stream during the load (median over watchers): how the server batches. */
  eventsPerChunk: number | null
  /** After the load, until the slowest watcher had the end marker (null: none, or never). */
  catchUpMs: number | null
  /** Empty when every watcher received every event; otherwise what went wrong. */
  problems: string[]
  watchDelta: Record<string, number>
  /** Log records per fdatasync between the markers (the writes' group commit). */
  recordsPerGroupCommit: number | null
}

export interface WritesPlan {
  watchers: WatcherProcesses
  script: string
  connectionCount: number
  catchUpTimeoutMs: number
}

export async function measureWrites(
  system: RunningSystem,
  watcherCount: number,
  seconds: number,
  plan: WritesPlan,
): Promise<WritesRun> {
  const { url } = system
  const { watchers } = plan
  if (watcherCount > 0) await watchers.open(url, 'busy:', watcherCount)
  const from = await putMarker(url, 'busy:marker-start')
  const before = await counters(url)
  await watchers.mark(from)
  const watcherCpuBefore = processesCpuS(watchers.pids)
  const run = await measureLoad(system.pids, () =>
    runWrk({
      url,
      script: plan.script,
      threadCount: 1,
      connectionCount: plan.connectionCount,
      seconds,
    }),
  )
  const watcherCpuAfter = processesCpuS(watchers.pids)
  await watchers.mark()
  await sleep(200)
  const to = await putMarker(url, 'busy:marker-end')
  const after = await counters(url)
  const serverChanges = after.changes - before.changes
  const seen = watcherCount === 0 ? [] : await watchers.finish(from, to, plan.catchUpTimeoutMs)
  const problems = checkLoad(run)
  const behind = seen.filter((w) => w.caughtUpMs === null)
  if (behind.length > 0) {
    const lag = Math.max(...behind.map((w) => to - w.lastId))
    problems.push(
      `${behind.length} of ${seen.length} watchers had not reached the end marker ${plan.catchUpTimeoutMs / 1000} s after the load (up to ${lag} sequence numbers behind)`,
    )
  }
  const wrongCount = seen.filter((w) => w.windowEvents !== serverChanges)
  if (wrongCount.length > 0)
    problems.push(
      `${wrongCount.length} watchers did not receive exactly the ${serverChanges} changes the server made (e.g. ${wrongCount[0]!.windowEvents})`,
    )
  const sums = new Set(seen.map((w) => w.windowIdSum))
  if (sums.size > 1) problems.push(`the watchers received different ids (${sums.size} id sums)`)
  const disordered = seen.filter((w) => w.disorder > 0)
  if (disordered.length > 0)
    problems.push(
      `${disordered.length} watchers saw ids out of order: ${disordered[0]!.disorderSample}`,
    )
  const ended = seen.filter((w) => w.ended !== undefined)
  if (ended.length > 0) problems.push(`${ended.length} streams ended early: ${ended[0]!.ended}`)
  // marks: [events, chunks] at the load's start, then at its end.
  const live = seen
    .map((w) => ((w.marks[2] ?? 0) - (w.marks[0] ?? 0)) / run.durationS)
    .sort((a, b) => a - b)
  const perChunk = seen
    .map(
      (w) =>
        ((w.marks[2] ?? 0) - (w.marks[0] ?? 0)) /
        Math.max(1, (w.marks[3] ?? 0) - (w.marks[1] ?? 0)),
    )
    .sort((a, b) => a - b)
  const watchDelta = Object.fromEntries(
    Object.entries(after.watch).map(([k, v]) => [k, v - (before.watch[k] ?? 0)]),
  )
  return {
    ...run,
    watcherCount,
    serverChanges,
    watcherCpuS:
      watcherCpuBefore === undefined || watcherCpuAfter === undefined
        ? null
        : watcherCpuAfter - watcherCpuBefore,
    liveEventsPerSecond: live.length === 0 ? null : live[live.length >> 1]!,
    eventsPerChunk: perChunk.length === 0 ? null : perChunk[perChunk.length >> 1]!,
    catchUpMs:
      seen.length === 0 || behind.length > 0 ? null : Math.max(...seen.map((w) => w.caughtUpMs!)),
    problems,
    watchDelta,
    recordsPerGroupCommit:
      after.groupCommits === before.groupCommits
        ? null
        : (after.recordsWritten - before.recordsWritten) /
          (after.groupCommits - before.groupCommits),
  }
}

function checkLoad(run: Measurement): string[] {
  if (run.badCount + run.socketErrorCount === 0) return []
  return [
    `wrk: ${run.badCount} wrong answers (${run.badSample}), ${run.socketErrorCount} socket errors`,
  ]
}

/** The value of a sorted list at percentile p. */
export const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!

export interface LatencyRun extends Measurement {
  ackToEventP50Ms: number
  ackToEventP99Ms: number
  sendToEventP50Ms: number
  sendToEventP99Ms: number
  lateWrites: number
  problems: string[]
}

export async function measureLatency(
  system: RunningSystem,
  seconds: number,
  options: { watchers: WatcherProcesses; watcherCount: number; rate: number },
): Promise<LatencyRun> {
  const { watchers, watcherCount, rate } = options
  let result: Awaited<ReturnType<WatcherProcesses['latency']>> | undefined
  const clientCpuBefore = processesCpuS(watchers.pids)
  const run = await measureLoad(system.pids, async (): Promise<Load> => {
    result = await watchers.latency(system.url, watcherCount, rate, seconds)
    return {
      generator: 'node:http',
      requests: result.writes,
      durationS: result.durationS,
      requestsPerSecond: result.writes / result.durationS,
      latencyP50Ms: percentile(result.ackToEventMs, 50),
      latencyP99Ms: percentile(result.ackToEventMs, 99),
      badCount: 0,
      badSample: '',
      socketErrorCount: 0,
      generatorCpuS: (processesCpuS(watchers.pids) ?? 0) - (clientCpuBefore ?? 0),
    }
  })
  const r = result!
  const problems: string[] = []
  if (r.missing > 0) problems.push(`${r.missing} (write, watcher) events never arrived`)
  if (r.disorder > 0) problems.push(`${r.disorder} events out of order`)
  return {
    ...run,
    latencyP50Ms: percentile(r.sendToAckMs, 50),
    latencyP99Ms: percentile(r.sendToAckMs, 99),
    ackToEventP50Ms: percentile(r.ackToEventMs, 50),
    ackToEventP99Ms: percentile(r.ackToEventMs, 99),
    sendToEventP50Ms: percentile(r.sendToEventMs, 50),
    sendToEventP99Ms: percentile(r.sendToEventMs, 99),
    lateWrites: r.lateWrites,
    problems,
  }
}

export interface DrainRun extends Measurement {
  events: number
  eventsPerSecond: number
  firstBlockMs: number
  problems: string[]
}

/** One watcher from `since` until it has `to`: `expected` events, read back from the log. */
export async function measureDrain(
  system: RunningSystem,
  options: {
    watchers: WatcherProcesses
    since: number
    to: number
    expected: number
    timeoutMs: number
  },
): Promise<DrainRun> {
  const { watchers, since, to, expected, timeoutMs } = options
  const clientCpuBefore = processesCpuS(watchers.pids)
  let result: Awaited<ReturnType<WatcherProcesses['drain']>> | undefined
  const run = await measureLoad(system.pids, async (): Promise<Load> => {
    result = await watchers.drain(system.url, 'key:', since, to, timeoutMs)
    const durationS = (result.doneMs ?? timeoutMs) / 1000
    return {
      generator: 'node:http',
      requests: result.events,
      durationS,
      requestsPerSecond: result.events / durationS,
      latencyP50Ms: Number.NaN,
      latencyP99Ms: Number.NaN,
      badCount: 0,
      badSample: '',
      socketErrorCount: 0,
      generatorCpuS: (processesCpuS(watchers.pids) ?? 0) - (clientCpuBefore ?? 0),
    }
  })
  const r = result!
  const problems: string[] = []
  if (r.doneMs === null)
    problems.push(`not drained in ${timeoutMs / 1000} s: ${r.events} events, last id ${r.lastId}`)
  if (r.events !== expected) problems.push(`${r.events} events, not the ${expected} written`)
  if (r.disorder > 0) problems.push(`ids out of order: ${r.disorderSample}`)
  if (r.ended !== undefined) problems.push(`the stream ended: ${r.ended}`)
  return {
    ...run,
    events: r.events,
    eventsPerSecond: run.requestsPerSecond,
    firstBlockMs: r.firstBlockMs,
    problems,
  }
}
