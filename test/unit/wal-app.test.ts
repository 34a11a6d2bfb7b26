import { describe, expect, it } from 'vitest'
import { type Durability, StorageFailedError } from '../../src/durability.js'
import { inProcessApp } from '../support/app.js'

// How the HTTP layer honours the log: refusals before anything changes (507 on a full disk,
// 503 once the log failed), a failed sync answered 503, and no response (read or write) before
// the sequence number it depends on is durable. The durability is a fake the test controls.

function makeApp(durability: Durability) {
  const { app, store } = inProcessApp({ durability })
  store.set('present', new TextEncoder().encode('here'))
  const request = (path: string, init: RequestInit = {}) => Promise.resolve(app.request(path, init))
  const json = (path: string, method: string, body: unknown) =>
    request(path, {
      method,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    })
  return { app, store, request, json }
}

const refusing = (refusal: 'storage_full' | 'storage_failed'): Durability => ({
  waitFor: () => undefined,
  refusal: () => refusal,
})

/** A durability whose durable sequence only the test moves. */
function manualDurability() {
  let durable = 0
  let waiters: { sequence: number; resolve: () => void }[] = []
  const asked: number[] = []
  const durability: Durability = {
    waitFor(sequence) {
      asked.push(sequence)
      if (sequence <= durable) return undefined
      return new Promise<void>((resolve) => waiters.push({ sequence, resolve }))
    },
    refusal: () => undefined,
  }
  const publish = (sequence: number) => {
    durable = sequence
    for (const waiter of waiters) if (waiter.sequence <= durable) waiter.resolve()
    waiters = waiters.filter((waiter) => waiter.sequence > durable)
  }
  return { durability, publish, asked }
}

/** The response, or 'pending' when it has not come within `ms`. */
async function within(response: Promise<Response>, ms = 50): Promise<Response | 'pending'> {
  const timer = new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms))
  return Promise.race([response, timer])
}

describe('HTTP while the disk is full', () => {
  it('refuses a PUT with 507 storage_full and changes nothing', async () => {
    const { store, request } = makeApp(refusing('storage_full'))
    const sequence = store.sequence
    const response = await request('/v1/kv/x', { method: 'PUT', body: 'value' })
    expect(response.status).toBe(507)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(await response.json()).toMatchObject({ status: 507, code: 'storage_full' })
    expect(store.peek('x')).toBeUndefined()
    expect(store.sequence).toBe(sequence)
  })

  it('refuses the seed routes with 507 and a detail, and deletes nothing', async () => {
    const { store, request, json } = makeApp(refusing('storage_full'))
    const set = await json('/set', 'POST', { key: 'x', value: 1 })
    expect(set.status).toBe(507)
    expect(await set.json()).toEqual({ detail: expect.stringMatching(/disk is full/) })
    const deleted = await request('/delete/present', { method: 'DELETE' })
    expect(deleted.status).toBe(507)
    expect((await request('/v1/kv/present', { method: 'DELETE' })).status).toBe(507)
    expect(store.peek('x')).toBeUndefined()
    expect(store.peek('present')).toBeDefined()
  })

  it('still serves reads, and a batch of reads, but not a batch that writes', async () => {
    const { store, request, json } = makeApp(refusing('storage_full'))
    const get = await request('/v1/kv/present')
    expect(get.status).toBe(200)
    expect(await get.text()).toBe('here')
    expect((await request('/get/present')).status).toBe(200)
    const reads = await json('/v1/batch', 'POST', { ops: [{ op: 'get', key: 'present' }] })
    expect(reads.status).toBe(200)
    expect(await reads.json()).toMatchObject({ results: [{ value: 'here' }] })
    const sequence = store.sequence
    for (const write of [
      { op: 'set', key: 'x', value: '1' },
      { op: 'delete', key: 'present' },
    ]) {
      const batch = await json('/v1/batch', 'POST', { ops: [{ op: 'get', key: 'present' }, write] })
      expect(batch.status).toBe(507)
      expect(await batch.json()).toMatchObject({ code: 'storage_full' })
    }
    expect(store.sequence).toBe(sequence)
    expect(store.peek('present')).toBeDefined()
  })
})

describe('HTTP once the log failed', () => {
  it('refuses writes with 503 storage_failed', async () => {
    const { store, request, json } = makeApp(refusing('storage_failed'))
    const put = await request('/v1/kv/x', { method: 'PUT', body: 'value' })
    expect(put.status).toBe(503)
    expect(await put.json()).toMatchObject({ code: 'storage_failed' })
    const set = await json('/set', 'POST', { key: 'x', value: 1 })
    expect(set.status).toBe(503)
    expect(await set.json()).toEqual({ detail: expect.any(String) })
    expect(store.peek('x')).toBeUndefined()
  })

  it('answers 503 storage_failed to a write whose sync failed', async () => {
    const { request, json } = makeApp({
      waitFor: () => Promise.reject(new StorageFailedError()),
      refusal: () => undefined,
    })
    const put = await request('/v1/kv/x', { method: 'PUT', body: 'value' })
    expect(put.status).toBe(503)
    expect(put.headers.get('content-type')).toBe('application/problem+json')
    expect(await put.json()).toMatchObject({ status: 503, code: 'storage_failed' })
    const set = await json('/set', 'POST', { key: 'y', value: 1 })
    expect(set.status).toBe(503)
    expect(await set.json()).toEqual({ detail: expect.any(String) })
  })
})

describe('HTTP waits for durability', () => {
  it('answers a write only once its version is durable', async () => {
    const { durability, publish } = manualDurability()
    const { store, request } = makeApp(durability)
    publish(store.sequence)
    const put = request('/v1/kv/x', { method: 'PUT', body: 'value' })
    expect(await within(put)).toBe('pending')
    publish(store.sequence)
    expect((await put).status).toBe(201)
  })

  it('does not show a value before its version is durable, nor wait for later writes', async () => {
    const { durability, publish, asked } = manualDurability()
    const { store, request } = makeApp(durability)
    const version = store.peek('present')!.version
    for (const path of ['/v1/kv/present', '/get/present']) {
      const get = request(path)
      expect(await within(get), path).toBe('pending')
      expect(asked.at(-1)).toBe(version)
    }
    publish(version)
    store.set('later', new TextEncoder().encode('not durable yet'))
    const get = await within(request('/v1/kv/present'))
    expect(get).not.toBe('pending')
    expect(get !== 'pending' && (await get.text())).toBe('here')
  })

  it('answers a miss only once the latest removal is durable, not every later write', async () => {
    const { durability, publish, asked } = manualDurability()
    const { store, request } = makeApp(durability)
    publish(store.sequence)
    store.delete('present')
    const removal = store.sequence
    store.set('pending', new TextEncoder().encode('a write the disk has not taken yet'))
    const miss = request('/v1/kv/present')
    expect(await within(miss)).toBe('pending')
    expect(asked.at(-1)).toBe(removal)
    publish(removal)
    expect((await miss).status).toBe(404)
    // A miss that no removal explains answers while the later write is still pending.
    const never = await within(request('/v1/kv/never-written'))
    expect(never !== 'pending' && never.status).toBe(404)
  })

  it('answers a failed condition only once the state it reveals is durable', async () => {
    const { durability, publish } = manualDurability()
    const { store, request } = makeApp(durability)
    publish(store.sequence)
    store.set('lock', new TextEncoder().encode('held by a write not yet durable'))
    const create = request('/v1/kv/lock', {
      method: 'PUT',
      body: 'mine',
      headers: { 'if-none-match': '*' },
    })
    expect(await within(create)).toBe('pending')
    store.delete('present')
    const deleteAgain = request('/v1/kv/present', { method: 'DELETE' })
    const seedDelete = request('/delete/present', { method: 'DELETE' })
    expect(await within(deleteAgain)).toBe('pending')
    expect(await within(seedDelete)).toBe('pending')
    publish(store.sequence)
    expect((await create).status).toBe(412)
    expect((await deleteAgain).status).toBe(404)
    expect((await seedDelete).status).toBe(404)
  })

  it('answers a miss only once everything up to the store sequence is durable', async () => {
    const { durability, publish, asked } = manualDurability()
    const { store, request } = makeApp(durability)
    publish(store.sequence)
    store.delete('present')
    const miss = request('/v1/kv/present')
    expect(await within(miss)).toBe('pending')
    expect(asked.at(-1)).toBe(store.sequence)
    publish(store.sequence)
    expect((await miss).status).toBe(404)
  })
})
