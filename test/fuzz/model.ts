import type { RawResponse } from '../support/raw-http.js'

// The model the generative test holds the server to: for each key, the states it may be in.
// Usually that is one state; it is more than one only where the test cannot know better: a TTL
// that ends while a request is on the wire, or a write the server may or may not have applied
// when it was killed. A response must be explained by one of the states, and the states that
// explain it are what the model keeps.

/** A stored value, as every read must return it. */
export interface Stored {
  value: Buffer
  contentType: string
  /** The version, once seen: a write through /set, or one a crash may have applied, has none yet. */
  version: number | undefined
  /** When the server's expiry falls (epoch ms), for an entry with a TTL. */
  expiry: { fromMs: number; toMs: number } | undefined
}

/** null: the key is absent. */
export type KeyState = Stored | null

/** When a request was sent and its answer read: the server acted in between. */
export interface Moment {
  sentMs: number
  receivedMs: number
}

/** Clocks round to milliseconds, and the server reads its clock once per operation. */
const expirySlackMs = 25

/** The states a key may be in at a moment: an entry whose TTL ends then may be either. */
export function statesAt(state: KeyState, at: Moment): KeyState[] {
  if (state === null || state.expiry === undefined) return [state]
  const live = at.sentMs < state.expiry.toMs + expirySlackMs
  const expired = at.receivedMs >= state.expiry.fromMs - expirySlackMs
  return [...(live ? [state] : []), ...(expired ? [null] : [])]
}

/** What a response means when the key was in a state: the state it leaves, or why it is wrong. */
export type Fit = { next: KeyState } | string

/** A response no state of the model explains: the server is wrong (or the model is). */
export class Mismatch extends Error {}

export class Model {
  readonly #keys = new Map<string, KeyState[]>()

  candidates(key: string): KeyState[] {
    return this.#keys.get(key) ?? [null]
  }

  keys(): string[] {
    return [...this.#keys.keys()]
  }

  replace(key: string, states: KeyState[]): void {
    const unique: KeyState[] = []
    for (const state of states) {
      if (!unique.some((known) => sameState(known, state))) unique.push(state)
    }
    this.#keys.set(key, unique)
  }

  /** The key's one state, when it is known for certain; undefined otherwise. */
  certain(key: string): KeyState | undefined {
    const states = this.candidates(key)
    return states.length === 1 ? states[0] : undefined
  }

  /**
   * Keeps the states in which the response is right; throws Mismatch when there are none.
   * `explain` says, for one state the key may have been in, what the response leaves.
   */
  resolve(
    key: string,
    at: Moment,
    response: RawResponse,
    what: string,
    explain: (state: KeyState) => Fit,
  ): void {
    const reasons: string[] = []
    const next: KeyState[] = []
    for (const candidate of this.candidates(key)) {
      for (const state of statesAt(candidate, at)) {
        const fit = explain(state)
        if (typeof fit === 'string') reasons.push(`${describeState(state)}: ${fit}`)
        else next.push(fit.next)
      }
    }
    if (next.length === 0) {
      throw new Mismatch(
        `${what} for key ${JSON.stringify(key)} answered ${describeResponse(response)}; ` +
          `no state of the key explains it: ${reasons.join(' | ')}`,
      )
    }
    this.replace(key, next)
  }

  /** A request that got no answer may have been applied or not: the key may be in either state. */
  widen(key: string, applied: (state: KeyState) => KeyState[]): void {
    const states = this.candidates(key)
    this.replace(key, [...states, ...states.flatMap(applied)])
  }
}

function sameState(a: KeyState, b: KeyState): boolean {
  if (a === null || b === null) return a === b
  return (
    a.value.equals(b.value) &&
    a.contentType === b.contentType &&
    a.version === b.version &&
    a.expiry?.fromMs === b.expiry?.fromMs &&
    a.expiry?.toMs === b.expiry?.toMs
  )
}

export function describeState(state: KeyState): string {
  if (state === null) return 'absent'
  const expiry = state.expiry === undefined ? '' : ', with a TTL'
  return `${state.value.byteLength} bytes of ${state.contentType}, version ${state.version ?? '?'}${expiry}`
}

export function describeResponse(response: RawResponse): string {
  const body = response.body.subarray(0, 300).toString('latin1')
  return `${response.status} ${JSON.stringify(response.headers['content-type'] ?? '')} ${JSON.stringify(body)}`
}

/**
 * Deep equality of two parsed JSON values, without recursion: the test stores values nested
 * tens of thousands deep, where a recursive comparison would run out of stack.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  const pending: [unknown, unknown][] = [[a, b]]
  for (let pair = pending.pop(); pair !== undefined; pair = pending.pop()) {
    const [x, y] = pair
    if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') {
      if (!Object.is(x, y)) return false
      continue
    }
    if (Array.isArray(x) !== Array.isArray(y)) return false
    const xKeys = Object.keys(x)
    const yKeys = Object.keys(y)
    if (xKeys.length !== yKeys.length) return false
    for (const key of xKeys) {
      if (!Object.hasOwn(y, key)) return false
      pending.push([(x as Record<string, unknown>)[key], (y as Record<string, unknown>)[key]])
    }
  }
  return true
}
