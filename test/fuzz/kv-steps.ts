import type { RawResponse } from '../support/raw-http.js'
import {
  invalidHeaderMediaTypes,
  invalidQueryTtls,
  keySegment,
  limits,
  longTtlSeconds,
  randomValue,
  shortTtlSeconds,
  validMediaTypes,
} from './inputs.js'
import { type Fit, type KeyState, Mismatch, type Moment } from './model.js'
import {
  checkRefusal,
  chooseKey,
  etag,
  expiryOf,
  isProblem,
  jsonBody,
  loopbackHost,
  refused,
  request,
  type Step,
  type StepContext,
  spellRoute,
  versionOfEtag,
} from './step.js'

// PUT, GET, HEAD and DELETE on /v1/kv/{key} (docs/api.md), with every condition,
// media type, TTL and key the generator can think of.

/** An If-Match header, and the versions it names (strong comparison); undefined if malformed. */
interface IfMatch {
  header: string
  versions: number[] | 'any' | undefined
}

function ifMatchFor(context: StepContext, state: KeyState | undefined): IfMatch {
  const { choices } = context
  const version = state?.version ?? choices.int(1, 1000)
  return choices.pick<IfMatch>([
    { header: etag(version), versions: [version] },
    { header: etag(version + 1000), versions: [version + 1000] },
    { header: `W/${etag(version)}`, versions: [] },
    { header: `"0${version}"`, versions: [] },
    { header: `"nope", ${etag(version)}`, versions: [version] },
    { header: '*', versions: 'any' },
    { header: '"nope"', versions: [] },
    { header: String(version), versions: undefined },
  ])
}

/** Whether If-Match holds for a state: undefined when the version is not known yet. */
function ifMatchHolds(ifMatch: IfMatch, state: KeyState): boolean | undefined {
  if (state === null) return false
  if (ifMatch.versions === 'any') return true
  if (state.version === undefined) return undefined
  return ifMatch.versions!.includes(state.version)
}

/** A write's acknowledgement: its version, which must exceed every earlier one on the connection. */
function acknowledgedVersion(
  context: StepContext,
  response: RawResponse,
  status: number,
): number | string {
  if (response.status !== status) return `expected ${status}`
  const version = (jsonBody(response) as { version?: unknown } | undefined)?.version
  if (typeof version !== 'number' || !Number.isSafeInteger(version)) return 'expected {version}'
  if (response.headers.etag !== etag(version)) return 'expected the ETag of the version'
  if (version <= context.versions.floor) {
    return `version ${version} is not above ${context.versions.floor}, acknowledged before on this connection`
  }
  return version
}

export function putStep(context: StepContext): Step {
  const { choices, model, partition } = context
  const { key, fault } = chooseKey(context)
  const ephemeral = partition.ephemeral.includes(key)
  const value = choices.chance(0.02)
    ? choices.bytes(limits.bodySizeMax + 1)
    : randomValue(choices, 0.15)
  const typeRoll = choices.int(0, 9)
  const contentType =
    typeRoll < 3
      ? ''
      : typeRoll < 9
        ? choices.pick(validMediaTypes)
        : choices.pick(invalidHeaderMediaTypes)
  const typeValid = typeRoll < 9
  const ttlRoll = choices.int(0, 9)
  let query = ''
  let ttlSeconds: number | undefined
  let ttlValid = true
  if (ttlRoll === 0 || ttlRoll === 1) ttlSeconds = choices.pick(longTtlSeconds)
  else if (ttlRoll === 2 && ephemeral) ttlSeconds = choices.pick(shortTtlSeconds)
  else if (ttlRoll === 3 && choices.chance(0.5)) {
    query = `?ttl=${encodeURIComponent(choices.pick(invalidQueryTtls))}`
    ttlValid = false
  }
  if (ttlSeconds !== undefined) query = `?ttl=${ttlSeconds}`
  const headers: Record<string, string> = loopbackHost(choices)
  if (contentType !== '') headers['Content-Type'] = contentType
  const stable = fault === undefined && !ephemeral
  const conditionRoll = stable ? choices.int(0, 9) : 9
  let ifMatch: IfMatch | undefined
  let ifNoneMatch: 'star' | 'malformed' | undefined
  if (conditionRoll <= 2) ifMatch = ifMatchFor(context, model.certain(key))
  if (conditionRoll === 3) ifNoneMatch = 'star'
  if (conditionRoll === 4) ifNoneMatch = choices.chance(0.8) ? 'star' : 'malformed'
  if (conditionRoll === 4 && choices.chance(0.3)) ifMatch = ifMatchFor(context, model.certain(key))
  if (ifMatch !== undefined) headers['If-Match'] = ifMatch.header
  if (ifNoneMatch !== undefined) headers['If-None-Match'] = ifNoneMatch === 'star' ? '*' : '"1"'
  const what = `PUT ${value.byteLength} bytes, ${JSON.stringify(contentType)}${query} ${JSON.stringify(headers)}`
  const refusals: [number, string][] = []
  if (fault !== undefined) refusals.push([400, fault])
  if (!ttlValid) refusals.push([400, 'ttl_invalid'])
  if (!typeValid) refusals.push([400, 'content_type_invalid'])
  if (value.byteLength > limits.bodySizeMax) refusals.push([413, 'body_too_large'])
  if (value.byteLength > limits.valueSizeMax) refusals.push([413, 'value_too_large'])
  if (ifMatch?.versions === undefined && ifMatch !== undefined)
    refusals.push([400, 'invalid_request'])
  if (ifNoneMatch === 'malformed') refusals.push([400, 'invalid_request'])
  const written = (version: number | undefined, at: Moment) => ({
    value,
    contentType: contentType === '' ? 'application/octet-stream' : contentType,
    version,
    expiry: expiryOf(at, ttlSeconds),
  })

  const explain = (state: KeyState, response: RawResponse, at: Moment): Fit => {
    if (refusals.length > 0) return refused(response, refusals, state)
    let holds: boolean | undefined = true
    if (ifMatch !== undefined && ifNoneMatch !== undefined) holds = false
    else if (ifNoneMatch !== undefined) holds = state === null
    else if (ifMatch !== undefined) holds = ifMatchHolds(ifMatch, state)
    if (holds !== true && isProblem(response, [[412, 'precondition_failed']]))
      return { next: state }
    if (holds === false) return 'expected 412 precondition_failed'
    const version = acknowledgedVersion(context, response, state === null ? 201 : 200)
    if (typeof version === 'string') return version
    context.versions.floor = version
    return { next: written(version, at) }
  }
  const path = `${spellRoute(choices, '/v1/kv/')}${keySegment(key)}${query}`
  return {
    what,
    request: request('PUT', fault === 'key_empty' ? `/v1/kv/${query}` : path, headers, value),
    head: false,
    check(response, at) {
      if (fault !== undefined) return checkRefusal(what, response, refusals)
      model.resolve(key, at, response, what, (state) => explain(state, response, at))
    },
    unanswered() {
      if (fault !== undefined || refusals.length > 0) return
      const now = Date.now()
      model.widen(key, () => [written(undefined, { sentMs: now - 60_000, receivedMs: now })])
    },
  }
}

/**
 * The version If-None-Match names, compared weakly (W/"n" names n too), 'any' for *, or
 * undefined when it names none: "054" is not version 54, and garbage is ignored.
 */
function ifNoneMatchVersion(header: string | undefined): number | 'any' | undefined {
  if (header === '*') return 'any'
  const match = /^(?:W\/)?"(0|[1-9]\d*)"$/.exec(header ?? '')
  return match === null ? undefined : Number(match[1])
}

/** A GET or HEAD of a random key, or, with readBack, a plain GET of that key. */
export function getStep(context: StepContext, head: boolean, readBack?: string): Step {
  const { choices, model } = context
  const { key, fault } =
    readBack === undefined ? chooseKey(context) : { key: readBack, fault: undefined }
  const headers: Record<string, string> = loopbackHost(choices)
  const state = model.certain(key)
  const version = state?.version ?? choices.int(1, 1000)
  const ifNoneMatch =
    readBack !== undefined
      ? undefined
      : choices.pick([
          undefined,
          undefined,
          undefined,
          etag(version),
          `W/${etag(version)}`,
          '*',
          `"0${version}"`,
          'garbage',
        ])
  if (ifNoneMatch !== undefined) headers['If-None-Match'] = ifNoneMatch
  const method = head ? 'HEAD' : 'GET'
  const what = `${method} ${JSON.stringify(headers)}`
  const refusals: [number, string][] = fault === undefined ? [] : [[400, fault]]

  const named = ifNoneMatchVersion(ifNoneMatch)

  const explain = (state: KeyState, response: RawResponse): Fit => {
    if (state === null) {
      if (response.status !== 404) return 'expected 404'
      if (!head && !isProblem(response, [[404, 'not_found']])) return 'expected 404 not_found'
      return { next: null }
    }
    const seen = versionOfEtag(response.headers.etag)
    if (seen === undefined) return 'expected an ETag "n"'
    if (state.version !== undefined && seen !== state.version)
      return `expected ETag "${state.version}"`
    const learned = { ...state, version: seen }
    const matches = named === 'any' || named === seen
    if (response.status === 304) return matches ? { next: learned } : 'expected 200, not 304'
    if (matches) return 'expected 304'
    if (response.status !== 200) return 'expected 200'
    if (response.headers['content-type'] !== state.contentType) {
      return `expected Content-Type ${JSON.stringify(state.contentType)}`
    }
    if (response.headers['content-length'] !== String(state.value.byteLength)) {
      return `expected Content-Length ${state.value.byteLength}`
    }
    if (!head && !response.body.equals(state.value)) return 'expected the stored bytes'
    if ((response.headers['slabkv-ttl'] !== undefined) !== (state.expiry !== undefined)) {
      return 'expected Slabkv-Ttl exactly when the entry has a TTL'
    }
    if (state.expiry !== undefined && !/^\d+\.\d{3}$/.test(response.headers['slabkv-ttl']!)) {
      return 'expected Slabkv-Ttl as seconds with three decimals'
    }
    if (response.headers['x-content-type-options'] !== 'nosniff') return 'expected nosniff'
    if (response.headers['content-security-policy'] !== 'sandbox') return 'expected CSP sandbox'
    return { next: learned }
  }
  return {
    what,
    request: request(
      method,
      fault === 'key_empty' ? '/v1/kv/' : `${spellRoute(choices, '/v1/kv/')}${keySegment(key)}`,
      headers,
    ),
    head,
    check(response, at) {
      if (fault !== undefined) {
        if (head) {
          if (response.status !== 400)
            throw new Mismatch(`${what} answered ${response.status}; expected 400`)
          return
        }
        return checkRefusal(what, response, refusals)
      }
      model.resolve(key, at, response, what, (state) => explain(state, response))
    },
    unanswered() {},
  }
}

export function deleteStep(context: StepContext): Step {
  const { choices, model } = context
  const { key, fault } = chooseKey(context)
  const headers: Record<string, string> = loopbackHost(choices)
  const stable = fault === undefined && context.partition.stable.includes(key)
  const ifMatch =
    stable && choices.chance(0.4) ? ifMatchFor(context, model.certain(key)) : undefined
  if (ifMatch !== undefined) headers['If-Match'] = ifMatch.header
  const what = `DELETE ${JSON.stringify(headers)}`
  const refusals: [number, string][] = []
  if (fault !== undefined) refusals.push([400, fault])
  if (ifMatch !== undefined && ifMatch.versions === undefined)
    refusals.push([400, 'invalid_request'])

  const explain = (state: KeyState, response: RawResponse): Fit => {
    if (refusals.length > 0) return refused(response, refusals, state)
    if (state === null) return refused(response, [[404, 'not_found']], null)
    const holds = ifMatch === undefined ? true : ifMatchHolds(ifMatch, state)
    if (holds !== true && isProblem(response, [[412, 'precondition_failed']]))
      return { next: state }
    if (holds === false) return 'expected 412 precondition_failed'
    return response.status === 204 ? { next: null } : 'expected 204'
  }
  return {
    what,
    request: request(
      'DELETE',
      fault === 'key_empty' ? '/v1/kv/' : `${spellRoute(choices, '/v1/kv/')}${keySegment(key)}`,
      headers,
    ),
    head: false,
    check(response, at) {
      if (fault !== undefined) return checkRefusal(what, response, refusals)
      model.resolve(key, at, response, what, (state) => explain(state, response))
    },
    unanswered() {
      if (refusals.length === 0) model.widen(key, () => [null])
    },
  }
}
