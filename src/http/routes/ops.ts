import { createRoute, z } from '@hono/zod-openapi'
import type { MissRatioCurve } from '../../mrc/collector.js'
import { I32, walStateFailed, walStateOk, walStateReadOnly } from '../../store/layout.js'
import type { LockOperationStats } from '../../store/lock-stats.js'
import { lockTimingEveryDefault } from '../../store/lock-stats.js'
import type { StoreStats } from '../../store/types.js'
import type { App, AppDeps } from '../deps.js'
import { requestTimesText, timedAs } from '../request-times.js'

// Operating the server: JSON stats, Prometheus metrics, and the liveness and readiness probes.

const walStateNames: Record<number, string> = {
  [walStateOk]: 'ok',
  [walStateReadOnly]: 'read-only (disk full)',
  [walStateFailed]: 'failed',
}

const statsRoute = createRoute({
  method: 'get',
  path: '/v1/stats',
  operationId: 'getStats',
  middleware: timedAs('getStats'),
  summary: 'Counters and gauges as JSON',
  responses: {
    200: {
      description: 'Stats',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
})

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  middleware: timedAs('getMetrics'),
  summary: 'Prometheus text exposition format',
  responses: { 200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } } },
})

const curveResetRoute = createRoute({
  method: 'post',
  path: '/v1/stats/miss-ratio-curve/reset',
  operationId: 'resetMissRatioCurve',
  middleware: timedAs('resetMissRatioCurve'),
  summary: 'Starts the miss-ratio curve again from nothing (the counters stay)',
  responses: {
    202: {
      description: 'The main thread starts a new curve; the next one published is from now',
      content: { 'application/json': { schema: z.object({ status: z.string() }) } },
    },
    404: {
      description: 'The curve is off (--miss-ratio-curve off)',
      content: { 'application/json': { schema: z.object({ status: z.string() }) } },
    },
  },
})

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  operationId: 'healthz',
  middleware: timedAs('healthz'),
  summary: 'Liveness: the process serves requests',
  responses: {
    200: {
      description: 'Alive',
      content: { 'application/json': { schema: z.object({ status: z.string() }) } },
    },
  },
})

const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  operationId: 'readyz',
  middleware: timedAs('readyz'),
  summary: 'Readiness: 503 while starting or shutting down',
  responses: {
    200: {
      description: 'Ready',
      content: { 'application/json': { schema: z.object({ status: z.string() }) } },
    },
    503: {
      description: 'Not ready',
      content: { 'application/json': { schema: z.object({ status: z.string() }) } },
    },
  },
})

/** Operations per second over the last sampling window, from the store's shared counters. */
class RateMeter {
  #lastCount = 0
  #lastTimeMs = Date.now()
  #rate = 0

  sample(count: number, nowMs: number): number {
    const elapsedMs = nowMs - this.#lastTimeMs
    // Re-measure at most once a second, so back-to-back scrapes do not divide by a few ms.
    if (elapsedMs >= 1000) {
      this.#rate = ((count - this.#lastCount) * 1000) / elapsedMs
      this.#lastCount = count
      this.#lastTimeMs = nowMs
    }
    return this.#rate
  }
}

function operationCount(stats: StoreStats): number {
  return stats.hits + stats.misses + stats.sets + stats.deletes
}

export function registerOpsRoutes(
  app: App,
  { store, runtime, missRatioCurve, requestTimes }: AppDeps,
): void {
  const meter = new RateMeter()
  meter.sample(operationCount(store.stats()), Date.now())

  const snapshot = () => {
    const stats = store.stats()
    const reads = stats.hits + stats.misses
    return {
      entries: stats.entryCount,
      entriesMax: stats.entryCountMax,
      bytes: stats.bytesUsed,
      bytesMax: stats.memorySizeMax,
      hits: stats.hits,
      misses: stats.misses,
      hitRatio: reads === 0 ? 0 : stats.hits / reads,
      sets: stats.sets,
      deletes: stats.deletes,
      evictions: stats.evictions,
      expirations: stats.expirations,
      opsPerSecond: Math.round(meter.sample(operationCount(stats), Date.now())),
      uptimeSeconds: Math.round((Date.now() - runtime.startedAtMs) / 1000),
      threads: runtime.threadCount,
      sequence: stats.sequence,
      arenaBytesMoved: stats.arenaBytesMoved,
      wal: {
        fsync: runtime.fsync ?? null,
        state: walStateNames[stats.walState] ?? 'unknown',
        durableSequence: stats.durableSequence,
        durableLag: Math.max(0, stats.sequence - stats.durableSequence),
        groupCommits: stats.walGroupCommits,
        recordsWritten: stats.walRecordsWritten,
        bytesWritten: stats.walBytesWritten,
        recordsPerGroupCommit:
          stats.walGroupCommits === 0 ? 0 : stats.walRecordsWritten / stats.walGroupCommits,
        snapshots: stats.walSnapshots,
        recovery: runtime.recovery ?? null,
      },
      watch: { streams: Atomics.load(store.views.headerI32, I32.watcherCount) },
      // Null when off, and for the first second, before the main thread has published one.
      missRatioCurve: missRatioCurve?.latest ?? null,
    }
  }

  app.openapi(statsRoute, (c) => c.json(snapshot(), 200))

  app.openapi(metricsRoute, (c) => {
    const s = snapshot()
    const lines: string[] = []
    const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number) => {
      lines.push(
        `# HELP slabkv_${name} ${help}`,
        `# TYPE slabkv_${name} ${type}`,
        `slabkv_${name} ${value}`,
      )
    }
    metric('entries', 'gauge', 'Entries resident.', s.entries)
    metric(
      'max_entries',
      'gauge',
      'The most entries the store holds (--max-entries).',
      s.entriesMax,
    )
    metric('bytes', 'gauge', 'Bytes of keys and values resident.', s.bytes)
    metric('max_bytes', 'gauge', 'The most bytes of keys and values (--max-memory).', s.bytesMax)
    metric('hits_total', 'counter', 'Reads that found their key.', s.hits)
    metric('misses_total', 'counter', 'Reads that did not.', s.misses)
    metric('sets_total', 'counter', 'Successful writes.', s.sets)
    metric('deletes_total', 'counter', 'Successful deletes.', s.deletes)
    metric('evictions_total', 'counter', 'Entries evicted to make room.', s.evictions)
    metric('expirations_total', 'counter', 'Entries reclaimed after their TTL.', s.expirations)
    metric(
      'arena_moved_bytes_total',
      'counter',
      'Bytes the arena cleaner moved.',
      s.arenaBytesMoved,
    )
    metric('wal_durable_lag', 'gauge', 'Mutations applied but not yet durable.', s.wal.durableLag)
    metric(
      'wal_group_commits_total',
      'counter',
      'Group commits (one write, one sync each).',
      s.wal.groupCommits,
    )
    metric('wal_records_total', 'counter', 'Log records written.', s.wal.recordsWritten)
    metric('wal_bytes_total', 'counter', 'Log bytes written.', s.wal.bytesWritten)
    metric('wal_snapshots_total', 'counter', 'Snapshots written.', s.wal.snapshots)
    metric('watch_streams', 'gauge', 'GET /v1/watch streams open.', s.watch.streams)
    curveMetrics(lines, s.missRatioCurve)
    lines.push(...requestTimesText(requestTimes?.read() ?? []))
    lockMetrics(lines, store.lockStats())
    metric('uptime_seconds', 'gauge', 'Seconds since start.', s.uptimeSeconds)
    metric('threads', 'gauge', 'Handler threads.', s.threads)
    return c.text(`${lines.join('\n')}\n`, 200, {
      'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
    })
  })

  app.openapi(curveResetRoute, (c) => {
    if (missRatioCurve === undefined) return c.json({ status: 'the curve is off' }, 404)
    missRatioCurve.reset()
    return c.json({ status: 'reset' }, 202)
  })
  app.openapi(healthRoute, (c) => c.json({ status: 'ok' }, 200))
  app.openapi(readyRoute, (c) =>
    runtime.ready ? c.json({ status: 'ready' }, 200) : c.json({ status: 'not ready' }, 503),
  )
}

/** The store lock's counters, one series per operation that has taken it (lock-stats.ts). */
function lockMetrics(lines: string[], stats: LockOperationStats[]): void {
  const family = (
    suffix: string,
    help: string,
    value: (operation: LockOperationStats) => number,
  ) => {
    const name = `slabkv_store_lock_${suffix}`
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
    for (const op of stats) lines.push(`${name}{operation="${op.operation}"} ${value(op)}`)
  }
  family(
    'acquisitions_total',
    'Times the store lock was taken, by operation.',
    (op) => op.acquisitions,
  )
  family(
    'contended_acquisitions_total',
    'Acquisitions that found the store lock held.',
    (op) => op.contended,
  )
  family(
    'sleeping_acquisitions_total',
    'Acquisitions that slept (Atomics.wait) for the store lock.',
    (op) => op.slept,
  )
  family(
    'wait_seconds_total',
    `Time spent waiting for the store lock (sampled: 1 acquisition in ${lockTimingEveryDefault}, scaled).`,
    (op) => op.waitSeconds,
  )
  family(
    'hold_seconds_total',
    `Time the store lock was held (sampled: 1 acquisition in ${lockTimingEveryDefault}, scaled).`,
    (op) => op.holdSeconds,
  )
}

/** The curve in Prometheus form: one gauge per size, labelled with the size in bytes. */
function curveMetrics(lines: string[], curve: MissRatioCurve | null): void {
  if (curve === null) return
  const name = 'slabkv_miss_ratio_curve_hit_ratio'
  lines.push(
    `# HELP ${name} Estimated hit ratio of reads if --max-memory were memory_bytes (SHARDS).`,
    `# TYPE ${name} gauge`,
  )
  for (const point of curve.points) {
    lines.push(`${name}{memory_bytes="${point.memorySize}"} ${point.hitRatio}`)
  }
  const gauge = (suffix: string, help: string, value: number) => {
    lines.push(
      `# HELP slabkv_miss_ratio_curve_${suffix} ${help}`,
      `# TYPE slabkv_miss_ratio_curve_${suffix} gauge`,
      `slabkv_miss_ratio_curve_${suffix} ${value}`,
    )
  }
  gauge('sampled_keys', 'Keys the curve is computed from.', curve.sampledKeyCount)
  gauge('reads', 'Reads the curve covers, since its start or reset.', curve.accessCount)
  gauge('dropped', 'Sampled accesses lost to a full access ring since then.', curve.droppedCount)
  gauge(
    'start_time_seconds',
    'When the curve started or was reset (Unix time).',
    curve.since / 1000,
  )
}
