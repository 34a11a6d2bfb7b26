import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../../src/config.js'
import { inlinePrefixSizeMax } from '../../src/http/media-type.js'
import { computeLayout, storeLimitsDefault, walRingSizeMin } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import type { BatchChange } from '../../src/store/types.js'
import { WalRing } from '../../src/wal/ring.js'

// The write-ahead log's options: their defaults, and the values refused before anything starts.

const MiB = 1024 * 1024

/** The limits main.ts allocates the store with: room for an inline media type in each value. */
const storeLimitsOf = (limits: typeof storeLimitsDefault) => ({
  ...limits,
  valueSizeMax: limits.valueSizeMax + inlinePrefixSizeMax,
})

describe('WAL configuration', () => {
  it('defaults to fsync always, a snapshot after 64 MiB of log, and 64 MiB segments', () => {
    const result = resolveConfig({}, {})
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.config.fsync).toBe('always')
    expect(result.config.snapshotLogSizeMin).toBe(64 * MiB)
    expect(result.config.segmentSizeMax).toBe(64 * MiB)
    expect(result.config.limits.walRingSize).toBeGreaterThanOrEqual(4 * MiB)
  })

  it('sizes the default WAL ring so that any batch within --max-body-size fits it', () => {
    for (const bodySize of ['64KiB', '4MiB', '16MiB']) {
      const result = resolveConfig({ 'max-body-size': bodySize, 'max-memory': '40MiB' }, {})
      if (!result.ok) throw new Error(result.message)
      const { config } = result
      const base = Store.create({ limits: storeLimitsOf(config.limits) })
      const ring = new WalRing(base.views)
      const store = Store.attach(base.buffer, {
        onMutation: (r) => ring.append(r),
        onUnlocked: () => ring.wakeWriterIfAppended(),
        logRoom: ring,
      })
      // As many of the largest values as the body holds in JSON, each under its own key.
      const valueSize = Math.min(config.limits.valueSizeMax, config.bodySizeMax - 100)
      const opJsonSize = `{"op":"set","key":"k-000","value":""},`.length + valueSize
      const count = Math.floor((config.bodySizeMax - '{"ops":[]}'.length) / opJsonSize)
      expect(count, bodySize).toBeGreaterThan(0)
      const changes: BatchChange[] = Array.from({ length: count }, (_, i) => ({
        op: 'set',
        key: `k-${String(i).padStart(3, '0')}`,
        valueSize,
      }))
      expect(
        store.atomically((tx) => tx.prepare(changes)),
        bodySize,
      ).toEqual({ ok: true })
    }
  })

  it('accepts each fsync mode by flag and by environment variable', () => {
    for (const mode of ['always', 'everysec', 'no']) {
      expect(resolveConfig({ fsync: mode }, {})).toMatchObject({
        ok: true,
        config: { fsync: mode },
      })
      expect(resolveConfig({}, { SLABKV_FSYNC: mode })).toMatchObject({ config: { fsync: mode } })
    }
    expect(resolveConfig({ fsync: 'no' }, { SLABKV_FSYNC: 'always' })).toMatchObject({
      config: { fsync: 'no' },
    })
  })

  it('refuses an unknown fsync mode, naming the flag and every choice', () => {
    const result = resolveConfig({ fsync: 'sometimes' }, {})
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.message).toContain('--fsync')
    expect(result.message).toContain('sometimes')
    for (const choice of ['always', 'everysec', 'no']) expect(result.message).toContain(choice)
    const fromEnv = resolveConfig({}, { SLABKV_FSYNC: 'sometimes' })
    expect(fromEnv).toMatchObject({ ok: false, message: expect.stringContaining('SLABKV_FSYNC') })
  })

  it('refuses a WAL ring smaller than two of the largest records and an eviction, and accepts exactly that', () => {
    const neededSize = walRingSizeMin(storeLimitsOf(storeLimitsDefault))
    const below = resolveConfig({ 'wal-ring-size': String(neededSize - 1) }, {})
    expect(below.ok).toBe(false)
    if (!below.ok) {
      expect(below.message).toContain('--wal-ring-size')
      expect(below.message).toContain(String(neededSize))
    }
    const exact = resolveConfig({ 'wal-ring-size': String(neededSize) }, {})
    expect(exact).toMatchObject({ ok: true, config: { limits: { walRingSize: neededSize } } })
    // What the configuration accepts, the layout must accept too, or the server dies at start.
    if (exact.ok) expect(() => computeLayout(storeLimitsOf(exact.config.limits))).not.toThrow()
  })

  it('judges the WAL ring against the configured key and value limits', () => {
    const flags = { 'max-value-size': '1KiB', 'max-key-size': '64' }
    const neededSize = walRingSizeMin(
      storeLimitsOf({ ...storeLimitsDefault, keySizeMax: 64, valueSizeMax: 1024 }),
    )
    expect(resolveConfig({ ...flags, 'wal-ring-size': String(neededSize) }, {}).ok).toBe(true)
    expect(resolveConfig({ ...flags, 'wal-ring-size': String(neededSize - 1) }, {}).ok).toBe(false)
    expect(resolveConfig({ 'wal-ring-size': String(neededSize) }, {}).ok).toBe(false)
  })

  it('reads the snapshot and segment sizes with units, and refuses a segment under 4 KiB', () => {
    const result = resolveConfig({ 'snapshot-after-size': '1MiB', 'segment-size': '4KiB' }, {})
    expect(result).toMatchObject({
      ok: true,
      config: { snapshotLogSizeMin: MiB, segmentSizeMax: 4096 },
    })
    expect(resolveConfig({ 'segment-size': '4095' }, {})).toMatchObject({
      ok: false,
      message: expect.stringContaining('--segment-size'),
    })
    expect(resolveConfig({ 'snapshot-after-size': '0' }, {}).ok).toBe(false)
  })
})
