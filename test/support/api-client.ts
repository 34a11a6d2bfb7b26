import { expect } from 'vitest'
import { keyPath, type RunningServer, sleep } from './server.js'

// The test process as another client of a running server: it changes keys behind the UI's
// back, checks what the UI wrote, and makes the traffic the dashboard should show.

/** Fetches a path of the server, with its bearer token when one is given. */
export function api(
  server: RunningServer,
  path: string,
  init: RequestInit = {},
  token?: string,
): Promise<Response> {
  const headers = new Headers(init.headers)
  if (token !== undefined) headers.set('authorization', `Bearer ${token}`)
  return fetch(`${server.url}${path}`, { ...init, headers })
}

/** The path of one key's native route. */
export function kvPath(key: string): string {
  return `/v1/kv/${keyPath(key)}`
}

export interface KeyToSet {
  key: string
  value: string
  contentType?: string
  ttl?: number
}

/** Sets many keys in one atomic request (docs/api.md, "POST /v1/batch"). */
export async function setKeys(server: RunningServer, keys: KeyToSet[]): Promise<void> {
  const response = await api(server, '/v1/batch', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ops: keys.map((entry) => ({ op: 'set', ...entry })) }),
  })
  expect(response.status).toBe(200)
}

let trafficRound = 0

/** Keeps the server busy for `durationMs` with the traffic of `trafficUntil`. */
export async function trafficFor(server: RunningServer, durationMs: number): Promise<void> {
  const endMs = Date.now() + durationMs
  await trafficUntil(server, () => Date.now() >= endMs)
}

/**
 * Runs `check` while the server is kept busy, and stops the traffic once it settles: for
 * what only shows while traffic goes on, such as a rate over the last second.
 */
export async function duringTraffic<T>(server: RunningServer, check: () => Promise<T>): Promise<T> {
  let checked = false
  // Settles to the traffic's error, if any: a failed request must neither surface as an
  // unhandled rejection while `check` runs nor hide the failure of `check` itself.
  const trafficError = trafficUntil(server, () => checked).then(
    () => undefined,
    (error: unknown) => error ?? new Error('the traffic failed'),
  )
  let result: T
  try {
    result = await check()
  } finally {
    checked = true
  }
  const error = await trafficError
  if (error !== undefined) throw error
  return result
}

/**
 * Keeps the server busy until `done()`: rounds of a batch of new keys (some with a one-second
 * TTL, so expirations follow), concurrent single writes (so group commits hold several
 * records), and reads that hit and miss. The batch size follows a wave, so charts show a shape.
 */
async function trafficUntil(server: RunningServer, done: () => boolean): Promise<void> {
  while (!done()) {
    const round = trafficRound++
    const size = 20 + Math.round(20 * Math.sin(round / 4) ** 2)
    const keys = Array.from({ length: size }, (_, i) => ({
      key: `load/${round}/${i}`,
      value: 'x'.repeat(100 + ((round * 37 + i * 11) % 400)),
      ...(i % 5 === 0 ? { ttl: 1 } : {}),
    }))
    await setKeys(server, keys)
    // Reads of the keys just written hit (three in four); the others miss.
    const answers = await Promise.all([
      ...Array.from({ length: 6 }, (_, i) =>
        api(server, kvPath(`load/single/${i}`), { method: 'PUT', body: `round ${round}` }),
      ),
      ...Array.from({ length: 8 }, (_, i) =>
        api(server, kvPath(i % 4 === 0 ? `load/missing/${i}` : `load/${round}/${i}`)),
      ),
    ])
    await Promise.all(answers.map((answer) => answer.arrayBuffer()))
    await sleep(60)
  }
}
