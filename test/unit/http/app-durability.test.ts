import { describe, expect, it } from 'vitest'
import { type Durability, StorageFailedError } from '../../../src/durability.js'
import { encodeMediaType } from '../../../src/http/media-type.js'
import { I32, walStateReadOnly } from '../../../src/store/layout.js'
import { inProcessApp, inProcessAppWithRing } from '../../support/app.js'

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
  durableSequence: () => Number.MAX_SAFE_INTEGER,
  refusal: () => refusal,
  announceLogRoomWait: () => Promise.resolve(),
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
    durableSequence: () => durable,
    refusal: () => undefined,
    announceLogRoomWait: () => Promise.resolve(),
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

  it('refuses the PyKV-compatible routes with 507 and a detail, and deletes nothing', async () => {
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
      durableSequence: () => 0,
      refusal: () => undefined,
      announceLogRoomWait: () => Promise.resolve(),
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

describe('HTTP and a miss caused by an expiry', () => {
  it('answers the miss only once the write that set the expiry is durable', async () => {
    const { durability, publish, asked } = manualDurability()
    const { store, request, json } = makeApp(durability)
    store.set('k', new TextEncoder().encode('v1, acknowledged'))
    publish(store.sequence)
    // A write with a TTL shorter than its way to the disk: a crash now would bring v1 back.
    const short = store.set('k', new TextEncoder().encode('v2'), { ttlMs: 1 })
    expect(short.ok).toBe(true)
    const version = short.ok ? short.version : 0
    await new Promise((resolve) => setTimeout(resolve, 10))
    const reads = [
      request('/v1/kv/k'),
      request('/v1/kv/k', { method: 'HEAD' }),
      request('/get/k'),
      request('/v1/kv?prefix=k'),
      json('/v1/batch', 'POST', { ops: [{ op: 'get', key: 'k' }] }),
    ]
    for (const read of reads) expect(await within(read)).toBe('pending')
    expect(asked.at(-1)).toBeGreaterThanOrEqual(version)
    publish(version)
    const [get, head, seed, list, batch] = await Promise.all(reads)
    expect(get!.status).toBe(404)
    expect(head!.status).toBe(404)
    expect(seed!.status).toBe(404)
    expect(await list!.json()).toMatchObject({ items: [] })
    expect(await batch!.json()).toMatchObject({ results: [{ found: false }] })
  })
})

describe('HTTP while the WAL ring is full', () => {
  /** Fills the ring with sets until the next 1,000-byte value would not fit. */
  function fillRing(store: ReturnType<typeof inProcessAppWithRing>['store']) {
    let i = 0
    while (store.set(`fill-${i}`, new Uint8Array(1000)).ok) i++
    return i
  }

  it('keeps a write waiting outside the store lock, serving reads meanwhile, until the writer drains', async () => {
    const { app, store, drain } = inProcessAppWithRing()
    store.set('other', new TextEncoder().encode('readable'))
    drain()
    expect(fillRing(store)).toBeGreaterThan(0)
    const sequence = store.sequence
    const put = Promise.resolve(
      app.request('/v1/kv/late', { method: 'PUT', body: new Uint8Array(1000) }),
    )
    expect(await within(put)).toBe('pending')
    expect(store.sequence).toBe(sequence) // Refused inside the store, not half-applied.
    // The lock is free: a read of another key answers at once, from this very thread.
    const get = await within(Promise.resolve(app.request('/v1/kv/other')))
    expect(get !== 'pending' && (await get.text())).toBe('readable')
    drain()
    // Woken by the release, it tries again and applies; the writer then makes it durable.
    await expect.poll(() => store.peek('late')).toBeDefined()
    drain()
    const answer = await put
    expect(answer.status).toBe(201)
    expect(store.peek('late')?.value.byteLength).toBe(1000)
    expect(await within(Promise.resolve(app.request('/v1/kv/late')))).not.toBe('pending')
  })

  it('refuses with 413 a batch whose records could never fit the ring, naming the flag, and changes nothing', async () => {
    const { app, store, drain } = inProcessAppWithRing()
    const sequence = store.sequence
    // Four 500-byte values: 4 × 533 bytes of records, with the largest again for a wrap and an
    // eviction's 83, need 2,748 bytes; the ring holds 2,322. Three need 2,215.
    const ops = [0, 1, 2, 3].map((i) => ({ op: 'set', key: `big-${i}`, value: 'x'.repeat(500) }))
    const response = await app.request('/v1/batch', {
      method: 'POST',
      body: JSON.stringify({ ops }),
      headers: { 'content-type': 'application/json' },
    })
    expect(response.status).toBe(413)
    const body = (await response.json()) as { code: string; detail: string }
    expect(body.code).toBe('batch_too_large')
    expect(body.detail).toContain('--wal-ring-size')
    expect(store.peek('big-0')).toBeUndefined()
    expect(store.sequence).toBe(sequence)
    // Three of them fit: the limit is the ring, not the batch's shape.
    const fits = Promise.resolve(
      app.request('/v1/batch', {
        method: 'POST',
        body: JSON.stringify({ ops: ops.slice(0, 3) }),
        headers: { 'content-type': 'application/json' },
      }),
    )
    await expect.poll(() => store.peek('big-2')?.value.byteLength).toBe(500)
    drain()
    expect((await fits).status).toBe(200)
  })

  it('answers 507 and changes nothing when the disk fills while a write waits for room', async () => {
    const { app, store, drain, ring } = inProcessAppWithRing()
    drain()
    fillRing(store)
    const put = Promise.resolve(
      app.request('/v1/kv/late', { method: 'PUT', body: new Uint8Array(1000) }),
    )
    expect(await within(put)).toBe('pending')
    Atomics.store(store.views.headerI32, I32.walState, walStateReadOnly)
    ring.wakeProducers() // The writer notifies waiters when the disk fills.
    const answer = await put
    expect(answer.status).toBe(507)
    expect(await answer.json()).toMatchObject({ code: 'storage_full' })
    expect(store.peek('late')).toBeUndefined()
  })

  it('refuses a write whose body finished after the disk filled, though it was accepted before', async () => {
    const { app, store } = inProcessAppWithRing()
    let finish: () => void = () => {}
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(10))
        finish = () => {
          controller.enqueue(new Uint8Array(10))
          controller.close()
        }
      },
    })
    const put = Promise.resolve(
      // With a Content-Length, nothing reads the body before the handler does (a chunked one
      // is counted whole by the body limit first).
      app.request('/v1/kv/late', {
        method: 'PUT',
        body,
        duplex: 'half',
        headers: { 'content-length': '20' },
      } as RequestInit),
    )
    expect(await within(put)).toBe('pending') // Past the refusal check, reading its body.
    Atomics.store(store.views.headerI32, I32.walState, walStateReadOnly)
    const sequence = store.sequence
    finish()
    const answer = await put
    expect(answer.status).toBe(507)
    expect(store.peek('late')).toBeUndefined()
    expect(store.sequence).toBe(sequence)
  })
})

describe('HTTP listing and durability', () => {
  it('never shows metadata of a write that is not durable, when an entry changes between scan and read', async () => {
    const { durability, publish, asked } = manualDurability()
    const { store, request } = makeApp(durability)
    const typed = (mediaType: string, body: string) => {
      const encoded = encodeMediaType(mediaType)
      if (typeof encoded === 'string') throw new Error(`${mediaType}: ${encoded}`)
      const value = Buffer.concat([encoded.prefix, Buffer.from(body)])
      const result = store.set('typed', value, { contentType: encoded.tag })
      return result.ok ? result.version : Number.NaN
    }
    typed('application/x-old', 'old')
    publish(store.sequence)
    // The listing scans 'typed' at its durable version, then reads the entry for its inline
    // media type: here another thread's write lands in between.
    const peek = store.peek.bind(store)
    let newer = 0
    store.peek = (key: string) => {
      if (key === 'typed' && newer === 0) newer = typed('application/x-newer', 'newer, not durable')
      return peek(key)
    }
    const list = request('/v1/kv?prefix=typed')
    expect(await within(list)).toBe('pending')
    expect(asked.at(-1)).toBe(newer)
    publish(newer)
    const { items } = (await (await list).json()) as { items: Record<string, unknown>[] }
    expect(items).toEqual([
      { key: 'typed', size: 18, contentType: 'application/x-newer', version: newer, ttl: null },
    ])
  })
})
