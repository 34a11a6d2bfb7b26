import type { StoreLimits } from './store/layout.js'

// Every limit and default in one place. The whole store is allocated once at start from these
// numbers, so each one is also a memory cost: see layout.ts for the bytes each implies.

export const storeLimitsDefault: StoreLimits = {
  // The seed's "capacity". Costs about 60 bytes of structure per entry, allocated up front.
  entryCountMax: 1_000_000,
  // What users size a cache by: bytes of keys plus values, counted exactly.
  memorySizeMax: 256 * 1024 * 1024,
  // As memcached and most HTTP caches; a longer key is refused, never truncated.
  keySizeMax: 1024,
  // As memcached's default item size; raising it costs nothing until used.
  valueSizeMax: 1024 * 1024,
  // 1/64 of memorySizeMax: bounds the arena cleaner's copying at about 64× the bytes it frees
  // in the worst case, for 1.6% more memory. See arena.ts.
  headroomPerMille: 16,
}
