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
