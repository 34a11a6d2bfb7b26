import { createRequire } from 'node:module'

// autocannon ships no types; these are the parts of its programmatic API the benchmarks use
// (v9 README). setupRequest gets a fresh copy of the template for every request
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

export interface AutocannonResult {
  requests: { average: number; total: number }
  latency: { p50: number; p99: number }
  errors: number
  timeouts: number
  mismatches: number
  statusCodeStats: Record<string, { count: number }>
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

export const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

/**
 * Records the latency of every response of a run, exactly (autocannon's own percentiles come
 * from a histogram in whole milliseconds). Call the returned function once the run has ended:
 * it gives the p-th percentile, in ms, NaN when nothing was answered.
 */
export function recordLatencies(instance: Instance): () => (p: number) => number {
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
