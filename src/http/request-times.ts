import assert from 'node:assert/strict'
import type { HttpBindings } from '@hono/node-server'
import type { Context, MiddlewareHandler } from 'hono'

// How long requests take, as one Prometheus histogram: slabkv_http_request_duration_seconds,
// labelled with the OpenAPI operation that answered (its operationId, or "other"). The labels are
// a fixed set, whatever keys, paths or methods clients send, so the series never grow with them.
//
// A request is timed by the connection layer (src/http/server.ts), from the moment it starts
// (after the requests pipelined before it on its connection) to its status line and headers
// being written: for a write, once it is durable; for a watch stream, once the stream starts.
// The route names its operation on the response as it starts: the two hottest (GET and PUT
// /v1/kv/{key}) in their handler (answeredBy), those app.openapi() serves in a middleware of the
// route, ahead of its validators (timedAs). A request no route claims (a 401 or 421, an unknown
// route's 404, the UI, the docs) is "other". No middleware runs for every request: a GET hit
// takes about 35 µs of CPU, and each middleware in Hono's chain costs a share of it.
//
// Every handler thread counts into its own region of one small SharedArrayBuffer, which the main
// thread allocates for them all (src/handler-threads.ts): a region has one writer, so counting
// takes no lock and no atomic operation, and whichever thread answers /metrics sums them all.
// The cells are float64, written whole by their one writer: x86-64 and arm64 load and store an
// aligned 8-byte word in one access, so a reader sees a cell before or after an update, never
// half of one. A scrape that races a request may count it in a bucket and not yet in the sum.

/** Every operationId the app declares (src/http/routes/), then "other" for everything else. */
export const operations = [
  'putKey',
  'getKey',
  'headKey',
  'deleteKey',
  'listKeys',
  'runBatch',
  'watchChanges',
  'getStats',
  'getMetrics',
  'resetMissRatioCurve',
  'getCluster',
  'healthz',
  'readyz',
  'pykvSet',
  'pykvGet',
  'pykvDelete',
  'other',
] as const

export type Operation = (typeof operations)[number]
export const operationOther = operations.indexOf('other')
const operationIndex = Object.fromEntries(operations.map((name, i) => [name, i])) as Record<
  Operation,
  number
>

/** What the server's responses carry for the histogram (src/http/server.ts's GuardedResponse). */
export interface TimedResponse {
  /** performance.now() when the request started; NaN once counted, or if never timed. */
  startedAtMs: number
  /** The index in operations of the operation that answers it. */
  operation: number
}

/** Called by a route's handler as it starts: the request is counted under this operation. */
export function answeredBy(c: Context, operation: Operation): void {
  const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing as
    | Partial<TimedResponse>
    | undefined
  if (outgoing !== undefined) outgoing.operation = operationIndex[operation]
}

/**
 * The same as a route's middleware (createRoute's `middleware`), for the routes app.openapi()
 * serves: it runs before the route's validators, so a request they refuse counts under it too.
 */
export function timedAs(operation: Operation): MiddlewareHandler {
  return (c, next) => {
    answeredBy(c, operation)
    return next()
  }
}

/** The buckets' upper bounds, in seconds: from a read from memory to a batch behind a slow disk. */
export const bucketBounds = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const

// Per operation: one count per bucket (not cumulative), one for +Inf, then the sum of seconds.
const cellsPerOperation = bucketBounds.length + 2
const sumCell = bucketBounds.length + 1
const cellsPerRegion = operations.length * cellsPerOperation
/** The header: an Int32 counter of the regions claimed, padded to 8 bytes. */
const headerSize = 8

/** A buffer with one region for each of regionCount threads. */
export function createRequestTimesBuffer(regionCount: number): SharedArrayBuffer {
  return new SharedArrayBuffer(headerSize + regionCount * cellsPerRegion * 8)
}

/** One operation's histogram, summed over every thread, as Prometheus exposes it. */
export interface OperationTimes {
  operation: Operation
  /** Cumulative: requests that took at most bucketBounds[i]; the last is +Inf, the count. */
  buckets: number[]
  sumSeconds: number
}

export class RequestTimes {
  readonly #all: Float64Array
  readonly #own: Float64Array

  /** Attaches to the buffer and claims the next free region, this thread's own. */
  constructor(buffer: SharedArrayBuffer = createRequestTimesBuffer(1)) {
    const regionCount = (buffer.byteLength - headerSize) / (cellsPerRegion * 8)
    const region = Atomics.add(new Int32Array(buffer, 0, 1), 0, 1)
    assert.ok(region < regionCount, `request-time region ${region} of ${regionCount}`)
    this.#all = new Float64Array(buffer, headerSize)
    this.#own = this.#all.subarray(region * cellsPerRegion, (region + 1) * cellsPerRegion)
  }

  /** Counts one request of the operation at that index, which took that many seconds. */
  observe(operation: number, seconds: number): void {
    let bucket = 0
    while (bucket < bucketBounds.length && seconds > bucketBounds[bucket]!) bucket++
    const base = operation * cellsPerOperation
    this.#own[base + bucket]!++
    this.#own[base + sumCell]! += seconds
  }

  /** Every operation that has been counted at least once, summed over every thread's region. */
  read(): OperationTimes[] {
    const regionCount = this.#all.length / cellsPerRegion
    const result: OperationTimes[] = []
    for (let op = 0; op < operations.length; op++) {
      const buckets = new Array<number>(bucketBounds.length + 1).fill(0)
      let sumSeconds = 0
      for (let region = 0; region < regionCount; region++) {
        const base = region * cellsPerRegion + op * cellsPerOperation
        for (let bucket = 0; bucket <= bucketBounds.length; bucket++) {
          buckets[bucket]! += this.#all[base + bucket]!
        }
        sumSeconds += this.#all[base + sumCell]!
      }
      for (let bucket = 1; bucket < buckets.length; bucket++) {
        buckets[bucket]! += buckets[bucket - 1]!
      }
      if (buckets.at(-1)! > 0) result.push({ operation: operations[op]!, buckets, sumSeconds })
    }
    return result
  }
}

const histogramName = 'slabkv_http_request_duration_seconds'

/** The histogram in Prometheus text format, one family (its HELP and TYPE even when empty). */
export function requestTimesText(times: OperationTimes[]): string[] {
  const lines = [
    `# HELP ${histogramName} Time from a request reaching the app to its answer being ready, by OpenAPI operation.`,
    `# TYPE ${histogramName} histogram`,
  ]
  for (const { operation, buckets, sumSeconds } of times) {
    const label = `operation="${operation}"`
    buckets.forEach((count, i) => {
      const le = i < bucketBounds.length ? String(bucketBounds[i]) : '+Inf'
      lines.push(`${histogramName}_bucket{${label},le="${le}"} ${count}`)
    })
    lines.push(`${histogramName}_sum{${label}} ${sumSeconds}`)
    lines.push(`${histogramName}_count{${label}} ${buckets.at(-1)}`)
  }
  return lines
}
