import type { RawConnection } from '../support/raw-http.js'
import { type KeyState, Mismatch, type Model, type Moment, statesAt } from './model.js'
import { jsonBody, loopbackHost, request, type StepContext } from './step.js'

// GET /v1/kv?prefix= over one partition, page after page (docs/api.md, "GET /v1/kv"): every key the
// model holds for certain is listed exactly once with its size, content type, version and TTL;
// nothing the model says is absent is listed; nothing is listed twice.

interface Item {
  key: string
  size: number
  contentType: string
  version: number
  ttl: number | null
}

const pageCountMax = 1000

export async function checkListing(
  connection: RawConnection,
  context: StepContext,
  model: Model,
): Promise<void> {
  const { choices, partition } = context
  const prefix = encodeURIComponent(partition.prefix)
  if (choices.chance(0.1)) {
    const limit = choices.pick(['0', '1001', 'x', '-1'])
    connection.write(
      request('GET', `/v1/kv?prefix=${prefix}&limit=${limit}`, loopbackHost(choices)),
    )
    const response = await connection.read()
    const body = jsonBody(response) as { code?: unknown } | undefined
    if (response.status !== 400 || body?.code !== 'invalid_request') {
      throw new Mismatch(`listing with limit=${limit} answered ${response.status}; expected 400`)
    }
  }
  const limit = choices.pick([1, 2, 5, 1000])
  const listed = new Map<string, Item>()
  const sentMs = Date.now()
  let cursor: string | null = '0'
  for (let page = 0; cursor !== null; page++) {
    if (page === pageCountMax)
      throw new Mismatch(`listing ${partition.prefix} did not end in ${pageCountMax} pages`)
    const target = `/v1/kv?prefix=${prefix}&limit=${limit}&cursor=${cursor}`
    connection.write(request('GET', target, loopbackHost(choices)))
    const response = await connection.read()
    const body = jsonBody(response) as { items?: Item[]; cursor?: string | null } | undefined
    if (response.status !== 200 || !Array.isArray(body?.items) || body.items.length > limit) {
      throw new Mismatch(`GET ${target} answered ${response.status}`)
    }
    for (const item of body.items) {
      if (listed.has(item.key)) throw new Mismatch(`listed ${JSON.stringify(item.key)} twice`)
      listed.set(item.key, item)
    }
    cursor = body.cursor ?? null
  }
  const at: Moment = { sentMs, receivedMs: Date.now() }
  // A partition may own keys outside its prefix (the dot-segment keys): a listing of the prefix
  // does not show them.
  const known = new Set(
    [...partition.stable, ...partition.ephemeral].filter((key) => key.startsWith(partition.prefix)),
  )
  for (const key of listed.keys()) {
    if (!known.has(key)) throw new Mismatch(`listed ${JSON.stringify(key)}, which was never stored`)
  }
  for (const key of known) {
    const item = listed.get(key)
    const states = model.candidates(key).flatMap((state) => statesAt(state, at))
    const fits = states.some((state) =>
      item === undefined ? state === null : itemShows(item, state),
    )
    if (!fits) {
      throw new Mismatch(
        `listing ${item === undefined ? 'left out' : 'showed'} ${JSON.stringify(key)} as ${JSON.stringify(item)}, which no state of the key explains`,
      )
    }
  }
}

function itemShows(item: Item, state: KeyState): boolean {
  if (state === null) return false
  return (
    item.size === state.value.byteLength &&
    item.contentType === state.contentType &&
    (state.version === undefined || item.version === state.version) &&
    (item.ttl === null) === (state.expiry === undefined)
  )
}
