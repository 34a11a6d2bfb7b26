import { createRequire } from 'node:module'
import type { Load } from './measure.js'

// autocannon, the Node-native load generator, in the benchmark's own process (bench:http, and
// GET hit in bench:peers). It ships no types; these are the parts of its programmatic API the
// benchmarks use (v9 README). setupRequest gets a fresh copy of the template for every request
// (lib/httpRequestBuilder.js), so it may change that copy in place, which spares the load
// generator an allocation; onResponse sees every body.

export interface AutocannonRequest {
  method?: string
  path?: string
  headers?: Record<string, string>
  body?: Buffer
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest
  onResponse?: (status: number, body: string) => void
}

interface AutocannonResult {
  requests: { total: number }
  /** Connection errors, timeouts included. */
  errors: number
}

interface Instance extends PromiseLike<AutocannonResult> {
  on(
    event: 'response',
    listener: (client: unknown, status: number, size: number, ms: number) => void,
  ): void
}

type Autocannon = (options: {
  url: string
  connections: number
  pipelining: number
  duration: number
  requests: AutocannonRequest[]
}) => Instance

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

/**
 * Records the latency of every response of a run, exactly (autocannon's own percentiles come
 * from a histogram in whole milliseconds). Call the returned function once the run has ended:
 * it gives the p-th percentile, in ms, NaN when nothing was answered.
 */
function recordLatencies(instance: Instance): () => (p: number) => number {
  let latencies = new Float64Array(1 << 18)
  let count = 0
  instance.on('response', (_client, _status, _size, ms) => {
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2)
      grown.set(latencies)
      latencies = grown
    }
    latencies[count++] = ms
  })
  return () => {
    const sorted = latencies.subarray(0, count).sort()
    return (p) =>
      sorted.length === 0
        ? Number.NaN
        : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!
  }
}

/** Requests in flight per connection: none queued behind another. */
export const pipelining = 1

export interface AutocannonOptions {
  url: string
  connectionCount: number
  seconds: number
  /** The request template; its setupRequest draws each request (from a seeded generator). */
  request: AutocannonRequest
  /** Whether an answer is right; any other is counted apart and never as throughput. */
  ok(status: number, body: string): boolean
}

/**
 * One measurement. The load generator's CPU is this process's during the run
 * (process.cpuUsage), which does nothing else meanwhile; latencies come from every response's
 * time, to 0.01 ms (autocannon's own histogram reports whole milliseconds).
 */
export async function runAutocannon(options: AutocannonOptions): Promise<Load> {
  const { url, connectionCount, seconds, request, ok } = options
  let badCount = 0
  let badSample = ''
  const instance = autocannon({
    url,
    connections: connectionCount,
    pipelining,
    duration: seconds,
    requests: [
      {
        ...request,
        onResponse(status, body) {
          if (ok(status, body)) return
          if (badCount++ === 0) badSample = `${status} ${body.slice(0, 160)}`
        },
      },
    ],
  })
  const percentiles = recordLatencies(instance)
  const cpuStart = process.cpuUsage()
  const wallStart = process.hrtime.bigint()
  const result = await instance
  const durationS = Number(process.hrtime.bigint() - wallStart) / 1e9
  const cpu = process.cpuUsage(cpuStart)
  const percentile = percentiles()
  return {
    generator: 'autocannon',
    requests: result.requests.total,
    durationS,
    requestsPerSecond: (result.requests.total - badCount) / durationS,
    latencyP50Ms: percentile(50),
    latencyP99Ms: percentile(99),
    badCount,
    badSample,
    socketErrorCount: result.errors,
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
  }
}
