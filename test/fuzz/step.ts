import { type RawResponse, rawRequest } from '../support/raw-http.js'
import { type Choices, faultyKey, type KeyFault } from './inputs.js'
import {
  describeResponse,
  type Fit,
  type KeyState,
  type Model,
  type Moment,
  type Stored,
} from './model.js'

// One request of the generative test, and how to judge its answer: what the request is, how
// its answer is checked against the model (which the check updates), and what the request may
// have done if the server died before answering.

export interface Step {
  /** For failure messages: the method, the route and what is unusual about the request. */
  what: string
  request: Buffer
  /** HEAD: the answer has headers only. */
  head: boolean
  /** The server closes the connection after answering (an HTTP/1.0 request). */
  closes?: boolean
  /** A documented 503 this request may get: /readyz while the server stops. */
  mayBeUnavailable?: boolean
  /** Throws Mismatch when no state of the model explains the answer. */
  check(response: RawResponse, at: Moment): void
  /** The server may have applied the request and died before answering. */
  unanswered(): void
}

/** The keys one connection owns: no other connection touches them, so their model is exact. */
export interface Partition {
  prefix: string
  /** Keys that never get a short TTL: batches and conditions use only these. */
  stable: string[]
  /** Keys that may expire while the test runs. */
  ephemeral: string[]
}

/** What every step builder works from. */
export interface StepContext {
  model: Model
  choices: Choices
  partition: Partition
  /** Each write's version must exceed the last one this connection saw acknowledged. */
  versions: { floor: number }
}

/** A key for a request: usually one of the partition's, sometimes one the server must refuse. */
export function chooseKey(
  context: StepContext,
  { faults = 0.06, ephemeral = true } = {},
): { key: string; fault: KeyFault | undefined } {
  const { choices, partition } = context
  if (choices.chance(faults)) return faultyKey(choices, partition.prefix)
  const pool = ephemeral && choices.chance(0.25) ? partition.ephemeral : partition.stable
  return { key: choices.pick(pool), fault: undefined }
}

/** The Host a client sends: loopback names the server must serve, in several spellings. */
export function loopbackHost(choices: Choices): Record<string, string> {
  return {
    Host: choices.pick(['127.0.0.1', 'localhost:8000', '[::1]:1', 'LocalHost', '127.9.9.9']),
  }
}

/**
 * A route prefix as a client may spell it: now and then with one letter percent-encoded
 * (/v1/k%76/), which must name the same route and leave the key exactly as it was.
 */
export function spellRoute(choices: Choices, prefix: string): string {
  if (!choices.chance(0.15)) return prefix
  const letters = [...prefix].flatMap((character, index) =>
    /[a-z]/.test(character) ? [index] : [],
  )
  const at = choices.pick(letters)
  const code = prefix.charCodeAt(at).toString(16).toUpperCase()
  return `${prefix.slice(0, at)}%${code}${prefix.slice(at + 1)}`
}

export function request(
  method: string,
  target: string,
  headers: Record<string, string>,
  body?: string | Uint8Array,
): Buffer {
  return rawRequest(method, target, headers, body)
}

/** The parsed JSON body, or undefined when it is not JSON. */
export function jsonBody(response: RawResponse): unknown {
  try {
    return JSON.parse(response.body.toString('utf8'))
  } catch {
    return undefined
  }
}

/** A problem+json answer with one of these status and code pairs. */
export function isProblem(response: RawResponse, allowed: [number, string][]): boolean {
  if (!/^application\/problem\+json/.test(response.headers['content-type'] ?? '')) return false
  const body = jsonBody(response) as { code?: unknown; status?: unknown } | undefined
  return allowed.some(
    ([status, code]) => response.status === status && body?.code === code && body.status === status,
  )
}

/** The fit of an answer that must be one of these refusals, leaving the key as it was. */
export function refused(response: RawResponse, allowed: [number, string][], state: KeyState): Fit {
  if (isProblem(response, allowed)) return { next: state }
  return `expected ${allowed.map(([status, code]) => `${status} ${code}`).join(' or ')}`
}

/** Checks an answer for a key the model does not hold (a faulty key): it must be refused. */
export function checkRefusal(what: string, response: RawResponse, allowed: [number, string][]) {
  if (!isProblem(response, allowed)) {
    throw new FaultyKeyMismatch(
      `${what} answered ${describeResponse(response)}; expected ${allowed.map((a) => a.join(' ')).join(' or ')}`,
    )
  }
}

export class FaultyKeyMismatch extends Error {}

/** The entity tag a version is sent as. */
export function etag(version: number): string {
  return `"${version}"`
}

/** The version an ETag header names, or undefined when it is not "n". */
export function versionOfEtag(header: string | undefined): number | undefined {
  const match = /^"(\d+)"$/.exec(header ?? '')
  return match === null ? undefined : Number(match[1])
}

/** The expiry window of a write sent and acknowledged at these times, with this TTL. */
export function expiryOf(at: Moment, ttlSeconds: number | undefined): Stored['expiry'] {
  if (ttlSeconds === undefined) return undefined
  return { fromMs: at.sentMs + ttlSeconds * 1000, toMs: at.receivedMs + ttlSeconds * 1000 }
}
