import type { RawResponse } from '../support/raw-http.js'
import {
  invalidJsonTtls,
  keySegment,
  limits,
  longTtlSeconds,
  nestedJson,
  randomJson,
  shortTtlSeconds,
} from './inputs.js'
import { type Fit, jsonEqual, type KeyState, Mismatch, type Moment, type Stored } from './model.js'
import {
  chooseKey,
  expiryOf,
  jsonBody,
  loopbackHost,
  request,
  type Step,
  type StepContext,
  spellRoute,
} from './step.js'

// The PyKV-compatible routes (docs/api.md, "PyKV-compatible routes"): POST /set with JSON values deep,
// huge and at the limits, GET /get/{key} and DELETE /delete/{key}, answered in FastAPI's shapes.

/** FastAPI's 422: {"detail":[{"type","loc","msg"},…]}. */
function isValidationError(response: RawResponse): boolean {
  const detail = (jsonBody(response) as { detail?: unknown } | undefined)?.detail
  return response.status === 422 && Array.isArray(detail) && detail.length > 0
}

/** {"detail": "…"} with this status. */
function isDetail(response: RawResponse, status: number, detail?: string): boolean {
  const body = jsonBody(response) as { detail?: unknown } | undefined
  if (response.status !== status || typeof body?.detail !== 'string') return false
  return detail === undefined || body.detail === detail
}

export function setStep(context: StepContext): Step {
  const { choices, model, partition } = context
  const { key, fault } = chooseKey(context, { faults: 0.05 })
  const ephemeral = partition.ephemeral.includes(key)
  let valueText: string
  let depth = 0
  const shape = choices.int(0, 9)
  if (shape <= 4) {
    depth = choices.int(0, 4)
    valueText = randomJson(choices, depth)
  } else if (shape <= 7) {
    depth = choices.pick([limits.jsonDepthMax, limits.jsonDepthMax + 1, 5_000, 30_000])
    valueText = nestedJson(depth)
  } else {
    // A string whose JSON is the value limit, or one byte more.
    const size = limits.valueSizeMax - 2 + choices.int(0, 1)
    valueText = JSON.stringify(choices.pick(['a', 'b']).repeat(size))
  }
  let ttlText = ''
  let ttlSeconds: number | undefined
  let ttlValid = true
  const ttlRoll = choices.int(0, 9)
  if (ttlRoll === 0) ttlSeconds = choices.pick(longTtlSeconds)
  else if (ttlRoll === 1 && ephemeral) ttlSeconds = choices.pick(shortTtlSeconds)
  else if (ttlRoll === 2) {
    ttlText = `,"ttl":${choices.pick(invalidJsonTtls)}`
    ttlValid = false
  }
  if (ttlSeconds !== undefined) ttlText = `,"ttl":${ttlSeconds}`
  const body = `{"key":${JSON.stringify(key)},"value":${valueText}${ttlText}}`
  const headers = { ...loopbackHost(choices), 'Content-Type': 'application/json' }
  const what = `POST /set depth ${depth}, ${Buffer.byteLength(valueText)} bytes of JSON${ttlText}`
  const bodyTooLarge = Buffer.byteLength(body) > limits.bodySizeMax
  const tooDeep = depth > limits.jsonDepthMax
  // What the server stores: the value parsed and serialized again (only when not too deep).
  const stored = tooDeep ? undefined : Buffer.from(JSON.stringify(JSON.parse(valueText)), 'utf8')
  const valueTooLarge = stored !== undefined && stored.byteLength > limits.valueSizeMax
  const invalid = fault !== undefined || tooDeep || !ttlValid

  const explain = (state: KeyState, response: RawResponse, at: Moment): Fit => {
    if (bodyTooLarge || valueTooLarge || invalid) {
      const fits =
        (bodyTooLarge && isDetail(response, 413)) ||
        (valueTooLarge && isDetail(response, 413)) ||
        (invalid && isValidationError(response))
      return fits ? { next: state } : 'expected 413 or 422 as FastAPI answers'
    }
    if (
      response.status !== 200 ||
      (jsonBody(response) as { status?: unknown })?.status !== 'success'
    ) {
      return 'expected 200 {"status":"success"}'
    }
    return {
      next: {
        value: stored!,
        contentType: 'application/json',
        version: undefined,
        expiry: expiryOf(at, ttlSeconds),
      },
    }
  }
  return {
    what,
    request: request('POST', '/set', headers, body),
    head: false,
    check(response, at) {
      if (fault !== undefined) {
        const tooLarge = bodyTooLarge || valueTooLarge
        if (isValidationError(response) || (tooLarge && isDetail(response, 413))) return
        throw new Mismatch(`${what} with a ${fault} key answered ${response.status}; expected 422`)
      }
      model.resolve(key, at, response, what, (state) => explain(state, response, at))
    },
    unanswered() {
      if (fault !== undefined || invalid || bodyTooLarge || valueTooLarge) return
      const now = Date.now()
      const at = { sentMs: now - 60_000, receivedMs: now }
      model.widen(key, () => [
        {
          value: stored!,
          contentType: 'application/json',
          version: undefined,
          expiry: expiryOf(at, ttlSeconds),
        },
      ])
    },
  }
}

/** What GET /get/{key} answers as the value: parsed JSON, or the bytes as text. */
function seedValueMatches(state: Stored, value: unknown): boolean {
  const text = new TextDecoder().decode(state.value)
  if (state.contentType === 'application/json') {
    try {
      return jsonEqual(value, JSON.parse(text))
    } catch {
      // Not JSON after all: answered as text.
    }
  }
  return value === text
}

/** GET /get/{key} or DELETE /delete/{key}: the same key handling, different answers. */
function seedPathStep(context: StepContext, method: 'GET' | 'DELETE'): Step {
  const { choices, model } = context
  const { key, fault } = chooseKey(context, { faults: 0.04 })
  const route = method === 'GET' ? '/get/' : '/delete/'
  const what = `${method} ${route}{key}`
  const explainPresent = (state: Stored, response: RawResponse): Fit => {
    if (method === 'DELETE') {
      const body = jsonBody(response) as { status?: unknown } | undefined
      return response.status === 200 && body?.status === 'deleted'
        ? { next: null }
        : 'expected 200 {"status":"deleted"}'
    }
    const body = jsonBody(response) as { key?: unknown; value?: unknown } | undefined
    if (response.status !== 200 || body?.key !== key) return 'expected 200 {"key","value"}'
    if (!seedValueMatches(state, body.value)) return 'expected the stored value'
    if (response.headers['x-content-type-options'] !== 'nosniff') return 'expected nosniff'
    return { next: state }
  }
  const explain = (state: KeyState, response: RawResponse): Fit => {
    if (state !== null) return explainPresent(state, response)
    return isDetail(response, 404, 'Key not found') ? { next: null } : 'expected 404 Key not found'
  }
  const segment = fault === 'key_empty' ? 'x' : keySegment(key)
  return {
    what,
    request: request(method, `${spellRoute(choices, route)}${segment}`, loopbackHost(choices)),
    head: false,
    check(response, at) {
      if (fault === undefined) {
        model.resolve(key, at, response, what, (state) => explain(state, response))
        return
      }
      // A key that is not UTF-8 is refused (422); any other key the store cannot hold is absent.
      const fits = fault === 'key_invalid' ? isValidationError(response) : response.status === 404
      if (!fits) throw new Mismatch(`${what} with a ${fault} key answered ${response.status}`)
    },
    unanswered() {
      if (fault === undefined && method === 'DELETE') model.widen(key, () => [null])
    },
  }
}

export function seedGetStep(context: StepContext): Step {
  return seedPathStep(context, 'GET')
}

export function seedDeleteStep(context: StepContext): Step {
  return seedPathStep(context, 'DELETE')
}
