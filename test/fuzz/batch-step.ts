import { isUtf8 } from 'node:buffer'
import type { RawResponse } from '../support/raw-http.js'
import {
  invalidJsonMediaTypes,
  invalidJsonTtls,
  type KeyFault,
  limits,
  longTtlSeconds,
  randomValue,
  validMediaTypes,
} from './inputs.js'
import { describeResponse, type KeyState, Mismatch, type Moment, type Stored } from './model.js'
import {
  chooseKey,
  expiryOf,
  isProblem,
  jsonBody,
  loopbackHost,
  request,
  type Step,
  type StepContext,
} from './step.js'

// POST /v1/batch (docs/api.md, "POST /v1/batch"): every condition checked against the state before the batch,
// all or nothing, reads bounded by --max-batch-read-size. A batch only touches keys whose state
// the model knows for certain, and only as the first request of a round, so that its answer is
// exactly predictable.

interface Op {
  op: 'get' | 'set' | 'delete'
  key: string
  fault: KeyFault | undefined
  value?: Buffer
  /** What the op sends as the value: text, base64, or a string that is not base64. */
  wire?: { value: string; encoding?: 'utf8' | 'base64' }
  contentType?: string
  ttl?: number
  ifVersion?: number
  ifAbsent?: boolean
  /** Why the server must refuse the op, as status and code; empty when it is valid. */
  refusals: [number, string][]
}

function randomOp(context: StepContext, readsOnly: boolean): Op {
  const { choices, model } = context
  const { key, fault } = chooseKey(context, { faults: 0.03, ephemeral: false })
  const refusals: [number, string][] = fault === undefined ? [] : [[400, fault]]
  const kind = readsOnly
    ? 'get'
    : choices.pick(['get', 'get', 'set', 'set', 'set', 'delete'] as const)
  const version = fault === undefined ? model.certain(key)?.version : undefined
  const condition = () =>
    choices.pick([
      undefined,
      undefined,
      version,
      version === undefined ? undefined : version + 1000,
    ])
  if (kind === 'get') return { op: 'get', key, fault, refusals }
  if (kind === 'delete') return { op: 'delete', key, fault, ifVersion: condition(), refusals }
  const value = randomValue(choices, 0.04)
  const op: Op = { op: 'set', key, fault, value, refusals, ifVersion: condition() }
  if (choices.chance(0.1)) {
    op.wire = { value: 'no*base64', encoding: 'base64' }
    refusals.push([400, 'invalid_request'])
  } else if (isUtf8(value) && choices.chance(0.6)) {
    op.wire = { value: value.toString('utf8'), ...(choices.chance(0.5) && { encoding: 'utf8' }) }
  } else {
    op.wire = { value: value.toString('base64'), encoding: 'base64' }
  }
  if (value.byteLength > limits.valueSizeMax) refusals.push([413, 'value_too_large'])
  const typeRoll = choices.int(0, 9)
  if (typeRoll >= 4) op.contentType = choices.pick(validMediaTypes)
  if (typeRoll === 9) {
    op.contentType = choices.pick(invalidJsonMediaTypes)
    refusals.push([400, 'content_type_invalid'])
  }
  const ttlRoll = choices.int(0, 9)
  if (ttlRoll === 0) op.ttl = choices.pick(longTtlSeconds)
  if (ttlRoll === 1) {
    op.ttl = choices.pick(invalidJsonTtls)
    refusals.push([400, 'ttl_invalid'])
  }
  if (op.ifVersion === undefined && choices.chance(0.2)) op.ifAbsent = true
  return op
}

function wireOp(op: Op): Record<string, unknown> {
  return {
    op: op.op,
    key: op.key,
    ...(op.wire !== undefined && { value: op.wire.value }),
    ...(op.wire?.encoding !== undefined && { encoding: op.wire.encoding }),
    ...(op.contentType !== undefined && { contentType: op.contentType }),
    ...(op.ttl !== undefined && { ttl: op.ttl }),
    ...(op.ifVersion !== undefined && { ifVersion: op.ifVersion }),
    ...(op.ifAbsent !== undefined && { ifAbsent: op.ifAbsent }),
  }
}

export function batchStep(context: StepContext): Step {
  const { choices, model } = context
  const count = choices.chance(0.05)
    ? limits.batchOpCountMax + 1
    : choices.int(1, limits.batchOpCountMax)
  // Some batches only read, as many keys as they may: those are the ones that meet the read limit.
  const readsOnly = choices.chance(0.25)
  const ops = Array.from({ length: readsOnly ? limits.batchOpCountMax : count }, () =>
    randomOp(context, readsOnly),
  )
  const body = JSON.stringify({ ops: ops.map(wireOp) })
  const headers = { ...loopbackHost(choices), 'Content-Type': 'application/json' }
  const what = `POST /v1/batch ${ops.map((op) => op.op).join(',')} (${Buffer.byteLength(body)} bytes)`
  const keys = [...new Set(ops.filter((op) => op.fault === undefined).map((op) => op.key))]

  /** The keys' states now: a batch is built only over keys the model knows for certain. */
  const statesNow = () => {
    const states = new Map<string, KeyState>()
    for (const key of keys) {
      const state = model.certain(key)
      if (state === undefined)
        throw new Error(`harness: batch over uncertain key ${JSON.stringify(key)}`)
      states.set(key, state)
    }
    return states
  }

  const check = (response: RawResponse, at: Moment) => {
    const fail = (why: string) => {
      throw new Mismatch(`${what} answered ${describeResponse(response)}; ${why}`)
    }
    const refusals: [number, string][] = ops.flatMap((op) => op.refusals)
    if (Buffer.byteLength(body) > limits.bodySizeMax) refusals.push([413, 'body_too_large'])
    if (ops.length > limits.batchOpCountMax) refusals.push([413, 'batch_too_large'])
    if (refusals.length > 0) {
      if (!isProblem(response, refusals)) fail(`expected one of ${JSON.stringify(refusals)}`)
      return
    }
    const before = statesNow()
    const failed = ops.findIndex((op) => {
      const state = before.get(op.key)!
      if (op.ifVersion !== undefined && state?.version !== op.ifVersion) return true
      return op.op === 'set' && op.ifAbsent === true && state !== null
    })
    if (failed >= 0) {
      if (!isProblem(response, [[412, 'precondition_failed']])) fail('expected 412')
      const index = (jsonBody(response) as { index?: unknown }).index
      if (index !== failed) fail(`expected the failing op's index ${failed}`)
      return
    }
    if (readSize(ops, before) > limits.batchReadSizeMax) {
      if (!isProblem(response, [[413, 'batch_read_too_large']]))
        fail('expected 413 batch_read_too_large')
      return
    }
    const results = (jsonBody(response) as { results?: unknown[] } | undefined)?.results
    if (response.status !== 200 || !Array.isArray(results) || results.length !== ops.length) {
      fail('expected 200 with one result per op')
    }
    const states = new Map(before)
    for (const [index, op] of ops.entries()) {
      const result = results![index] as Record<string, unknown>
      const state = states.get(op.key)!
      if (op.op === 'get') {
        const why = checkRead(state, result)
        if (why !== undefined) fail(`op ${index}: ${why}`)
        if (state !== null) states.set(op.key, { ...state, version: result.version as number })
      } else if (op.op === 'delete') {
        if (result.deleted !== (state !== null))
          fail(`op ${index}: expected deleted ${state !== null}`)
        states.set(op.key, null)
      } else {
        const version = result.version
        if (typeof version !== 'number' || version <= context.versions.floor) {
          fail(`op ${index}: expected a version above ${context.versions.floor}`)
        }
        context.versions.floor = version as number
        states.set(op.key, written(op, version as number, at))
      }
    }
    for (const [key, state] of states) model.replace(key, [state])
  }

  return {
    what,
    request: request('POST', '/v1/batch', headers, body),
    head: false,
    check,
    unanswered() {
      if (ops.some((op) => op.refusals.length > 0) || ops.length > limits.batchOpCountMax) return
      // Applied whole or not at all; each key is let be either, which is looser than the truth.
      const now = Date.now()
      const at = { sentMs: now - 60_000, receivedMs: now }
      for (const op of ops) {
        if (op.op === 'set') model.widen(op.key, () => [written(op, undefined, at)])
        if (op.op === 'delete') model.widen(op.key, () => [null])
      }
    },
  }
}

function written(op: Op, version: number | undefined, at: Moment): Stored {
  return {
    value: op.value!,
    contentType: op.contentType ?? 'application/octet-stream',
    version,
    expiry: expiryOf(at, op.ttl),
  }
}

/**
 * The bytes of values the batch reads, as the server counts them before applying anything: a read
 * after a write of the same key counts what the batch wrote.
 */
function readSize(ops: Op[], before: Map<string, KeyState>): number {
  const sizes = new Map<string, number>()
  for (const [key, state] of before) sizes.set(key, state?.value.byteLength ?? 0)
  let size = 0
  for (const op of ops) {
    if (op.op === 'get') size += sizes.get(op.key)!
    if (op.op === 'set') sizes.set(op.key, op.value!.byteLength)
    if (op.op === 'delete') sizes.set(op.key, 0)
  }
  return size
}

/** Why a get's result does not show the state, or undefined when it does. */
function checkRead(state: KeyState, result: Record<string, unknown>): string | undefined {
  if (state === null) return result.found === false ? undefined : 'expected {"found":false}'
  const { value, encoding, contentType, version } = result
  if (typeof value !== 'string') return 'expected a value'
  // Text when the bytes are UTF-8 and JSON's escapes leave them no longer than base64 would.
  const text = Buffer.from(state.value).toString('utf8')
  const utf8 =
    isUtf8(state.value) &&
    Buffer.byteLength(JSON.stringify(text)) - 2 <=
      Buffer.from(state.value).toString('base64').length
  if (encoding !== (utf8 ? 'utf8' : 'base64'))
    return `expected encoding ${utf8 ? 'utf8' : 'base64'}`
  if (!Buffer.from(value, utf8 ? 'utf8' : 'base64').equals(state.value))
    return 'expected the stored bytes'
  if (contentType !== state.contentType)
    return `expected contentType ${JSON.stringify(state.contentType)}`
  if (typeof version !== 'number') return 'expected a version'
  if (state.version !== undefined && version !== state.version)
    return `expected version ${state.version}`
  return undefined
}
