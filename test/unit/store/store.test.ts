import { describe, expect, it } from 'vitest'
import type { StoreLimits } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import type { CreateStoreOptions, MutationRecord } from '../../../src/store/types.js'
import { verifyStore } from '../../../src/store/verify.js'
import { prng, testSeed } from '../../support/random.js'

const text = (value: string) => new TextEncoder().encode(value)
const read = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value)

function makeStore(limits: Partial<StoreLimits> = {}, options: CreateStoreOptions = {}) {
  let now = 1_000_000
  const records: MutationRecord[] = []
  const store = Store.create({
    limits: {
      entryCountMax: 4,
      memorySizeMax: 1000,
      keySizeMax: 16,
      valueSizeMax: 100,
      headroomPerMille: 0,
      ...limits,
    },
    clock: () => now,
    onMutation: (record) => records.push(record),
    hashSeed: 1,
    ...options,
  })
  return {
    store,
    records,
    advance: (ms: number) => {
      now += ms
    },
    log: () => records.map((record) => `${record.op} ${record.key}`),
    keys: () =>
      store
        .scan('', 0, 1000)
        .items.map((item) => item.key)
        .sort(),
  }
}

describe('store', () => {
  it('returns what was set, with its version, and a miss for an absent key', () => {
    const { store } = makeStore()
    const result = store.set('a', text('one'), { contentType: 3 })
    expect(result).toEqual({ ok: true, version: 1, created: true })
    const entry = store.get('a')
    expect(read(entry?.value)).toBe('one')
    expect(entry).toMatchObject({ contentType: 3, version: 1, expiresAt: 0 })
    expect(store.get('b')).toBeUndefined()
    expect(store.stats()).toMatchObject({
      hits: 1,
      misses: 1,
      sets: 1,
      entryCount: 1,
      bytesUsed: 4,
    })
  })

  it('gives every write a higher version than the last', () => {
    const { store } = makeStore()
    const first = store.set('a', text('1'))
    const second = store.set('a', text('2'))
    expect(first.ok && second.ok && second.version > first.version).toBe(true)
  })

  it('returns a copy that later writes do not change', () => {
    const { store } = makeStore()
    store.set('a', text('one'))
    const entry = store.get('a')!
    store.set('a', text('two'))
    expect(read(entry.value)).toBe('one')
    expect(entry.value.buffer).not.toBeInstanceOf(SharedArrayBuffer)
  })

  it('evicts the least recently used key when full', () => {
    const { store, keys, log } = makeStore({ entryCountMax: 3 })
    for (const key of ['a', 'b', 'c']) store.set(key, text(key))
    store.get('a') // b is now the oldest
    store.set('d', text('d'))
    expect(keys()).toEqual(['a', 'c', 'd'])
    expect(log().slice(-2)).toEqual(['evict b', 'set d'])
  })

  it('does not refresh recency on peek', () => {
    const { store, keys } = makeStore({ entryCountMax: 2 })
    store.set('a', text('a'))
    store.set('b', text('b'))
    expect(read(store.peek('a')?.value)).toBe('a')
    store.set('c', text('c'))
    expect(keys()).toEqual(['b', 'c'])
    expect(store.stats().hits).toBe(0)
  })

  it('evicts by bytes until the new entry fits the memory limit', () => {
    const { store, keys } = makeStore({ entryCountMax: 10, memorySizeMax: 30 })
    for (const key of ['a', 'b', 'c']) store.set(key, text('x'.repeat(9))) // 10 bytes each
    store.set('d', text('x'.repeat(19))) // 20 bytes: a and b must go
    expect(keys()).toEqual(['c', 'd'])
    expect(store.stats().bytesUsed).toBe(30)
  })

  it('counts the evictions each handle made, by the limit that forced them', () => {
    const { store } = makeStore({ entryCountMax: 3, memorySizeMax: 30 })
    const other = Store.attach(store.buffer)
    for (const key of ['a', 'b', 'c']) store.set(key, text('x'.repeat(4))) // 5 bytes each
    store.set('d', text('x'.repeat(4))) // a fourth entry: a goes, for --max-entries
    expect([store.evictedForEntries, store.evictedForMemory]).toEqual([1, 0])
    other.set('e', text('x'.repeat(25))) // 26 bytes: b (for the count), then c and d (bytes)
    expect([other.evictedForEntries, other.evictedForMemory]).toEqual([1, 2])
    // Each handle counts its own; the store's counter counts every handle's.
    expect([store.evictedForEntries, store.evictedForMemory]).toEqual([1, 0])
    expect(store.stats().evictions).toBe(4)
  })

  it('never evicts the entry being replaced to make room for its own new value', () => {
    const { store, keys } = makeStore({ entryCountMax: 10, memorySizeMax: 30 })
    store.set('a', text('x'.repeat(9)))
    store.set('b', text('x'.repeat(9)))
    store.set('a', text('x'.repeat(24))) // 25 + 10 > 30, and a is the LRU tail: b must go instead
    expect(keys()).toEqual(['a'])
    expect(read(store.get('a')?.value)).toBe('x'.repeat(24))
  })

  it('accepts an entry exactly at each limit and refuses one byte more, changing nothing', () => {
    const { store, records } = makeStore({ keySizeMax: 8, valueSizeMax: 20, memorySizeMax: 25 })
    expect(store.set('k'.repeat(8), text('v'))).toMatchObject({ ok: true })
    expect(store.set('k'.repeat(9), text('v'))).toEqual({ ok: false, code: 'key_too_large' })
    expect(store.set('é'.repeat(4), text('v'))).toMatchObject({ ok: true }) // 8 bytes
    expect(store.set('é'.repeat(5), text('v'))).toEqual({ ok: false, code: 'key_too_large' })
    expect(store.set('v', text('x'.repeat(20)))).toMatchObject({ ok: true })
    expect(store.set('v', text('x'.repeat(21)))).toEqual({ ok: false, code: 'value_too_large' })
    expect(store.set('kkkkkk', text('x'.repeat(19)))).toMatchObject({ ok: true }) // 25 bytes
    expect(store.set('kkkkkkk', text('x'.repeat(19)))).toEqual({
      ok: false,
      code: 'entry_too_large',
    })
    const before = records.length
    expect(store.set('', text('v'))).toEqual({ ok: false, code: 'key_empty' })
    expect(store.set('\ud800', text('v'))).toEqual({ ok: false, code: 'key_invalid' })
    expect(store.set('t', text('v'), { ttlMs: 0 })).toEqual({ ok: false, code: 'ttl_invalid' })
    expect(store.set('t', text('v'), { ttlMs: Number.NaN })).toEqual({
      ok: false,
      code: 'ttl_invalid',
    })
    expect(records.length).toBe(before)
    expect(store.stats().entryCount).toBe(1)
    expect(verifyStore(store.buffer)).toEqual([])
  })

  it("reads, finds and rewrites a record that ends at the arena's last byte", () => {
    // Keys and values move as 32-bit words through a DataView on the arena, which throws on a
    // read past its end: a word read beyond the last record would fail here. Two records fill
    // the arena exactly (entryCountMax 2 and no headroom make it memorySizeMax + 2 headers), so
    // the second ends at its last byte, for keys of every length mod 4, ASCII and not.
    for (const key of ['a', 'ab', 'abc', 'abcd', 'abcde', 'ab€', 'ab€é', 'ключ', 'a😀b']) {
      const memorySizeMax = 40
      const { store } = makeStore({ entryCountMax: 2, memorySizeMax, valueSizeMax: 40 })
      expect(store.views.layout.arenaSize).toBe(memorySizeMax + 2 * 4)
      const first = text('x'.repeat(15)) // record [0, 20): header, 'f', 15 bytes
      const keySize = text(key).length
      const last = Uint8Array.from({ length: memorySizeMax - 16 - keySize }, (_, i) => i + 1)
      expect(store.set('f', first)).toMatchObject({ ok: true })
      expect(store.set(key, last)).toMatchObject({ ok: true })
      expect(store.stats().bytesUsed).toBe(memorySizeMax)
      const { loc, keySizes, valueSizes, layout } = store.views
      const ends = [0, 1].map((slot) => loc[slot]! + 4 + keySizes[slot]! + valueSizes[slot]!)
      expect(Math.max(...ends), key).toBe(layout.arenaSize)
      expect(store.get(key)?.value, key).toEqual(last)
      expect(store.peek('f')?.value, key).toEqual(first)
      // A key one byte longer that shares the stored key's bytes is not it.
      expect(store.get(`${key}z`), key).toBeUndefined()
      const rewritten = last.map((byte) => byte ^ 0xff)
      expect(store.set(key, rewritten)).toMatchObject({ ok: true, created: false })
      expect(store.get(key)?.value, key).toEqual(rewritten)
      expect(verifyStore(store.buffer), key).toEqual([])
      expect(store.delete(key)).toMatchObject({ ok: true })
      expect(store.get(key), key).toBeUndefined()
    }
  })

  it('writes only when absent with ifAbsent', () => {
    const { store } = makeStore()
    expect(store.set('a', text('1'), { ifAbsent: true })).toMatchObject({ ok: true })
    expect(store.set('a', text('2'), { ifAbsent: true })).toEqual({ ok: false, code: 'key_exists' })
    expect(read(store.get('a')?.value)).toBe('1')
  })

  it('compares and sets with ifVersion', () => {
    const { store } = makeStore()
    const first = store.set('a', text('1'))
    if (!first.ok) throw new Error('set failed')
    expect(store.set('a', text('2'), { ifVersion: first.version + 1 })).toEqual({
      ok: false,
      code: 'version_mismatch',
    })
    expect(store.set('a', text('2'), { ifVersion: first.version })).toMatchObject({ ok: true })
    expect(store.set('b', text('2'), { ifVersion: 1 })).toEqual({
      ok: false,
      code: 'version_mismatch',
    })
    expect(read(store.get('a')?.value)).toBe('2')
  })

  it('deletes, conditionally too, and reports an absent key', () => {
    const { store } = makeStore()
    const result = store.set('a', text('1'))
    if (!result.ok) throw new Error('set failed')
    expect(store.delete('a', { ifVersion: result.version + 1 })).toEqual({
      ok: false,
      code: 'version_mismatch',
    })
    expect(store.delete('a', { ifVersion: result.version })).toEqual({
      ok: true,
      sequence: result.version + 1,
    })
    expect(store.delete('a')).toEqual({ ok: false, code: 'not_found' })
    expect(store.stats()).toMatchObject({ deletes: 1, entryCount: 0, bytesUsed: 0 })
  })

  it('hides an expired entry at once and reclaims it when touched', () => {
    const { store, advance, log } = makeStore()
    store.set('a', text('1'), { ttlMs: 100 })
    expect(store.get('a')?.expiresAt).toBe(1_000_100)
    advance(99)
    expect(store.peek('a')).toBeDefined()
    advance(1)
    expect(store.scan('', 0, 10).items).toEqual([])
    expect(store.stats().entryCount).toBe(1) // invisible, not yet reclaimed
    expect(store.get('a')).toBeUndefined()
    expect(log().at(-1)).toBe('expire a')
    expect(store.stats()).toMatchObject({ entryCount: 0, expirations: 1 })
  })

  it('drops the expiry when a key is rewritten without a TTL', () => {
    const { store, advance } = makeStore()
    store.set('a', text('1'), { ttlMs: 10 })
    store.set('a', text('2'))
    advance(1000)
    expect(read(store.get('a')?.value)).toBe('2')
  })

  it('reclaims every expired entry before evicting a live one', () => {
    const { store, advance, keys, log } = makeStore({ entryCountMax: 3 })
    store.set('live-old', text('1'))
    store.set('ttl-1', text('1'), { ttlMs: 10 })
    store.set('ttl-2', text('1'), { ttlMs: 20 })
    advance(50)
    store.set('new', text('1'))
    expect(keys()).toEqual(['live-old', 'new'])
    expect(log().slice(-3)).toEqual(['expire ttl-1', 'expire ttl-2', 'set new'])
  })

  it('sweeps expired entries incrementally, a bounded number per call', () => {
    const { store, advance } = makeStore({ entryCountMax: 10 })
    for (let i = 0; i < 5; i++) store.set(`k${i}`, text('1'), { ttlMs: 10 + i })
    store.set('forever', text('1'))
    advance(100)
    expect(store.sweep(2)).toBe(2)
    expect(store.sweep(10)).toBe(3)
    expect(store.sweep(10)).toBe(0)
    expect(store.stats().entryCount).toBe(1)
  })

  it('reports every mutation in apply order with consecutive sequence numbers', () => {
    const { store, records } = makeStore({ entryCountMax: 2 })
    store.set('a', text('1'), { ttlMs: 5, contentType: 2 })
    store.set('b', text('2'))
    store.set('c', text('3'))
    store.delete('b')
    store.clear()
    expect(records.map((record) => [record.op, record.key, record.sequence])).toEqual([
      ['set', 'a', 1],
      ['set', 'b', 2],
      ['evict', 'a', 3],
      ['set', 'c', 4],
      ['delete', 'b', 5],
      ['clear', '', 6],
    ])
    const first = records[0]
    expect(first).toMatchObject({ contentType: 2, expiresAt: 1_000_005 })
    expect(read(first?.op === 'set' ? first.value : undefined)).toBe('1')
  })

  it('lists keys by prefix across pages, each exactly once', () => {
    const { store } = makeStore({ entryCountMax: 50, memorySizeMax: 5000 })
    for (let i = 0; i < 30; i++) store.set(`user:${i}`, text('x'))
    for (let i = 0; i < 10; i++) store.set(`order:${i}`, text('x'))
    const seen: string[] = []
    let cursor: number | null = 0
    let pages = 0
    while (cursor !== null) {
      const page = store.scan('user:', cursor, 7)
      expect(page.items.length).toBeLessThanOrEqual(7)
      seen.push(...page.items.map((item) => item.key))
      cursor = page.cursor
      pages++
    }
    expect(pages).toBeGreaterThan(4)
    expect(seen.sort()).toEqual([...Array(30).keys()].map((i) => `user:${i}`).sort())
  })

  it('ends a scan of a few keys in a large table on its first page, with cursor null', () => {
    // 100,000 slots and 8 keys: the slots past the last one used are never visited.
    const { store } = makeStore({ entryCountMax: 100_000, memorySizeMax: 100_000 })
    for (let i = 0; i < 8; i++) store.set(`k${i}`, text('x'))
    const page = store.scan('', 0, 100)
    expect(page.items.map((item) => item.key).sort()).toEqual(
      [...Array(8).keys()].map((i) => `k${i}`),
    )
    expect(page.cursor).toBeNull()
    expect(page.boundReached).toBe(false)
  })

  it('never ends a scan in an empty page: a full page looks on for the next match', () => {
    const { store } = makeStore({ entryCountMax: 50, memorySizeMax: 5000 })
    // The matches first, then keys the prefix leaves out: the last full page's next match is
    // none, though slots follow.
    for (let i = 0; i < 21; i++) store.set(`user:${i}`, text('x'))
    for (let i = 0; i < 10; i++) store.set(`order:${i}`, text('x'))
    for (const [count, limit] of [
      [21, 7],
      [21, 3],
      [21, 21],
      [21, 5],
      [21, 100],
    ] as const) {
      const sizes: number[] = []
      let cursor: number | null = 0
      while (cursor !== null) {
        const page = store.scan('user:', cursor, limit)
        sizes.push(page.items.length)
        cursor = page.cursor
      }
      const pageCount = Math.ceil(count / limit)
      expect(sizes, `limit ${limit}`).toEqual(
        Array.from({ length: pageCount }, (_, i) =>
          i < pageCount - 1 ? limit : count - limit * (pageCount - 1),
        ),
      )
    }
  })

  it('examines a bounded number of slots per call, and says when it stopped there', () => {
    const { store } = makeStore({ entryCountMax: 10_000, memorySizeMax: 100_000 })
    for (let i = 0; i < 5000; i++) store.set(`other:${i}`, text('x'))
    store.set('user:late', text('x'))
    const first = store.scan('user:', 0, 10)
    expect(first).toEqual({ items: [], cursor: 4096, boundReached: true })
    const second = store.scan('user:', first.cursor!, 10)
    expect(second.items.map((item) => item.key)).toEqual(['user:late'])
    expect(second).toMatchObject({ cursor: null, boundReached: false })
    // Limit 0 only looks for the next match: the slot the next call starts with.
    expect(store.scan('user:', 4096, 0)).toEqual({ items: [], cursor: 5000, boundReached: false })
    expect(store.scan('user:', 0, 0)).toEqual({ items: [], cursor: 4096, boundReached: true })
  })

  it('scans the slots deletes freed and those reused, and nothing after a clear', () => {
    const { store } = makeStore({ entryCountMax: 10_000, memorySizeMax: 100_000 })
    for (let i = 0; i < 10; i++) store.set(`k${i}`, text('x'))
    for (let i = 0; i < 9; i++) store.delete(`k${i}`)
    expect(store.scan('', 0, 100)).toMatchObject({ items: [{ key: 'k9' }], cursor: null })
    store.set('again', text('x'))
    expect(
      store
        .scan('', 0, 100)
        .items.map((item) => item.key)
        .sort(),
    ).toEqual(['again', 'k9'])
    expect(verifyStore(store.buffer)).toEqual([])
    store.clear()
    expect(store.scan('', 0, 100)).toEqual({ items: [], cursor: null, boundReached: false })
    store.set('fresh', text('x'))
    expect(store.scan('', 0, 100)).toMatchObject({ items: [{ key: 'fresh' }], cursor: null })
    expect(verifyStore(store.buffer)).toEqual([])
  })

  it('lists non-ASCII keys and prefixes', () => {
    const { store } = makeStore({ entryCountMax: 10 })
    store.set('日本/東京', text('1'))
    store.set('日本/大阪', text('1'))
    store.set('中国', text('1'))
    expect(
      store
        .scan('日本/', 0, 10)
        .items.map((item) => item.key)
        .sort(),
    ).toEqual(['日本/大阪', '日本/東京'])
  })

  it('stores keys with slashes, spaces, percent signs and astral characters', () => {
    const { store } = makeStore({ keySizeMax: 64 })
    const keys = ['a/b/c', 'with space', '100%', '😀 emoji']
    for (const key of keys) store.set(key, text(key))
    for (const key of keys) expect(read(store.get(key)?.value)).toBe(key)
  })

  it('empties every structure on clear', () => {
    const { store } = makeStore()
    store.set('a', text('1'), { ttlMs: 10 })
    store.set('b', text('1'))
    store.clear()
    expect(store.stats()).toMatchObject({ entryCount: 0, bytesUsed: 0 })
    expect(store.get('a')).toBeUndefined()
    expect(verifyStore(store.buffer)).toEqual([])
    store.set('c', text('1'))
    expect(read(store.get('c')?.value)).toBe('1')
  })

  it('runs several operations atomically and refuses reentrant calls', () => {
    const { store } = makeStore()
    store.set('n', text('1'))
    const next = store.atomically((tx) => {
      const value = Number(read(tx.get('n')?.value))
      tx.set('n', text(String(value + 1)))
      return value + 1
    })
    expect(next).toBe(2)
    expect(() => store.atomically(() => store.get('n'))).toThrow(/not reentrant/)
    expect(read(store.get('n')?.value)).toBe('2') // the lock was released after the throw
  })

  it('shares its state with a second handle attached to the same buffer', () => {
    const { store } = makeStore()
    store.set('a', text('1'))
    const other = Store.attach(store.buffer)
    expect(read(other.get('a')?.value)).toBe('1')
    other.set('b', text('2'))
    expect(read(store.get('b')?.value)).toBe('2')
  })

  it('keeps at most 64 bytes of structure per entry, beside the fixed-size rings', () => {
    const store = Store.create({
      limits: {
        entryCountMax: 100_000,
        memorySizeMax: 11_600_000,
        keySizeMax: 1024,
        valueSizeMax: 1 << 20,
        headroomPerMille: 16,
      },
    })
    const rings = store.layout.walRingSize + store.views.accessRing.byteLength
    const overhead = (store.layout.byteLength - rings - 11_600_000) / 100_000
    expect(overhead).toBeLessThanOrEqual(64)
  })
})

describe('copy', () => {
  it('holds every entry exactly, whatever the target held where the copy does not write', () => {
    const seed = testSeed('store-copy')
    const random = prng(seed)
    const { store } = makeStore({ entryCountMax: 64, memorySizeMax: 4000, valueSizeMax: 400 })
    let copies = 0
    // Enough writes of mixed sizes for the arena's log to wrap and be cleaned several times.
    for (let step = 1; step <= 600; step++) {
      const key = `k${Math.floor(random() * 80)}`
      if (random() < 0.2) store.delete(key)
      else store.set(key, new Uint8Array(1 + Math.floor(random() * 120)).fill(step & 255))
      if (step % 25 !== 0) continue
      const target = new SharedArrayBuffer(store.buffer.byteLength)
      new Uint8Array(target).fill(0xaa)
      const copy = store.tryExclusively(() => store.copy(target))?.value
      expect(copy, `seed ${seed}`).toBeDefined()
      expect(verifyStore(copy!.buffer), `seed ${seed}, step ${step}`).toEqual([])
      const keys = store.scan('', 0, 1000).items.map((item) => item.key)
      expect(copy!.scan('', 0, 1000).items.map((item) => item.key)).toEqual(keys)
      for (const key of keys)
        expect(copy!.peek(key), `seed ${seed}, ${key}`).toEqual(store.peek(key))
      copies++
    }
    expect(copies).toBe(24)
  })
})
