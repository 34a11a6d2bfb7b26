import { describe, expect, it } from 'vitest'
import { F64, I32 } from '../../../src/store/layout.js'
import { Store } from '../../../src/store/store.js'
import { verifyStore } from '../../../src/store/verify.js'

// Canaries: each plants one specific corruption and proves verifyStore() names it. A checker
// that cannot fail proves nothing.

function populatedStore() {
  const store = Store.create({
    limits: {
      entryCountMax: 8,
      memorySizeMax: 200,
      keySizeMax: 16,
      valueSizeMax: 100,
      headroomPerMille: 0,
    },
    hashSeed: 3,
  })
  for (const key of ['a', 'b', 'c', 'd', 'e'])
    store.set(key, new TextEncoder().encode(`value-${key}`), key === 'c' ? { ttlMs: 1e9 } : {})
  store.delete('b')
  return store
}

describe('verifyStore', () => {
  it('finds nothing wrong with a healthy store', () => {
    expect(verifyStore(populatedStore().buffer)).toEqual([])
  })

  it('catches a broken LRU back link', () => {
    const store = populatedStore()
    const head = store.views.headerI32[I32.lruHead]!
    const second = store.views.next[head]!
    store.views.prev[second] = second // should point at head
    expect(verifyStore(store.buffer).join('\n')).toMatch(/prev is/)
  })

  it('catches an LRU cycle instead of walking forever', () => {
    const store = populatedStore()
    const head = store.views.headerI32[I32.lruHead]!
    store.views.next[store.views.next[head]!] = head
    expect(verifyStore(store.buffer).join('\n')).toMatch(/cycle/)
  })

  it('catches a lost slot', () => {
    const store = populatedStore()
    store.views.headerI32[I32.freeSlotHead] = -1
    expect(verifyStore(store.buffer).join('\n')).toMatch(/some slot is lost/)
  })

  it('catches a slot high-water mark below a used slot, which scans would stop short of', () => {
    const store = populatedStore()
    // Five slots were used (b's freed one among them): 0 to 4.
    expect(store.views.headerI32[I32.slotHighWater]).toBe(5)
    store.views.headerI32[I32.slotHighWater] = 4
    expect(verifyStore(store.buffer).join('\n')).toMatch(/high-water mark/)
  })

  it('catches a stale cached hash', () => {
    const store = populatedStore()
    const head = store.views.headerI32[I32.lruHead]!
    store.views.hashes[head] = store.views.hashes[head]! ^ 1
    expect(verifyStore(store.buffer).join('\n')).toMatch(/cached hash/)
  })

  it('catches a wrong byte count', () => {
    const store = populatedStore()
    store.views.headerF64[F64.bytesUsed]! += 1
    expect(verifyStore(store.buffer).join('\n')).toMatch(/bytesUsed/)
  })

  it('catches an arena record pointing at the wrong owner', () => {
    const store = populatedStore()
    const head = store.views.headerI32[I32.lruHead]!
    store.views.loc[head] = store.views.loc[head]! + 1
    expect(verifyStore(store.buffer).length).toBeGreaterThan(0)
  })

  it('catches a broken expiry heap', () => {
    const store = populatedStore()
    store.views.headerI32[I32.heapSize] = 0
    expect(verifyStore(store.buffer).join('\n')).toMatch(/heap/)
  })
})
