import { describe, expect, it } from 'vitest'
import { CurveCollector } from '../../../src/mrc/collector.js'
import { Store } from '../../../src/store/store.js'
import { makeTrace, replay, type TraceKind } from '../../support/mrc-traces.js'
import { testSeed } from '../../support/random.js'

// The accuracy bar: four seeded traces through the real store at one size, the curve's
// predictions at ½×, 2× and 4× against the hit ratio real stores of those sizes measure on the
// same trace. Mean absolute error ≤ 0.02, every point within 0.05. Twice: with the sample's
// default 8,192 keys, and with the 4,096 the collector's budget may shrink it to when few keys
// take many operations (that budget is timed, so it is left out here and tested in shards).

const memorySize = 4 * 1024 * 1024
const factors = [0.5, 2, 4]
// Bytes bind, never entries: the largest store holds ~33,000 entries of ~500 bytes.
const limitsAt = (factor: number) => ({
  entryCountMax: 400_000,
  memorySizeMax: Math.round(memorySize * factor),
  keySizeMax: 64,
  valueSizeMax: 4096,
  headroomPerMille: 16,
})
const traceOptions = { length: 600_000, keyCount: 40_000, alpha: 0.95 }
const sampleSizes = [8192, 4096]

describe('the miss-ratio curve against real stores', () => {
  const errors = new Map<number, number[]>(sampleSizes.map((size) => [size, []]))
  const kinds: TraceKind[] = ['uniform', 'zipf', 'zipf+scans', 'zipf, no refill']

  it.each(kinds)('predicts a %s trace', (kind) => {
    const seed = testSeed(`mrc accuracy (${kind})`)
    const trace = makeTrace(kind, seed, traceOptions)
    const real = new Map(
      factors.map((factor) => [
        factor,
        replay(Store.create({ limits: limitsAt(factor), hashSeed: seed }), trace),
      ]),
    )
    for (const sampleKeysMax of sampleSizes) {
      const store = Store.create({ limits: limitsAt(1), hashSeed: seed })
      const collector = new CurveCollector(store.views, {
        sampleKeysMax,
        sampledAccessesPerSecondMax: Number.POSITIVE_INFINITY,
      })
      const measured = replay(store, trace, 1000, () => collector.drain())
      const curve = collector.curve()
      const at = (size: number) =>
        curve.points.reduce((best, p) =>
          Math.abs(p.memorySize - size) < Math.abs(best.memorySize - size) ? p : best,
        ).hitRatio
      const rows = [`1×: real ${measured.toFixed(4)} curve ${at(memorySize).toFixed(4)}`]
      const where = `${kind}, ${sampleKeysMax} keys (seed ${seed})`
      expect(Math.abs(at(memorySize) - measured), `${where} at 1×`).toBeLessThan(0.05)
      for (const factor of factors) {
        const predicted = at(memorySize * factor)
        const error = Math.abs(predicted - real.get(factor)!)
        errors.get(sampleKeysMax)!.push(error)
        rows.push(
          `${factor}×: real ${real.get(factor)!.toFixed(4)} curve ${predicted.toFixed(4)} ` +
            `error ${error.toFixed(4)}`,
        )
        expect(error, `${where} at ${factor}×`).toBeLessThanOrEqual(0.05)
      }
      console.log(
        `mrc ${kind}: ${curve.sampledKeyCount} keys sampled, ${curve.accessCount} gets, ` +
          `${curve.droppedCount} dropped\n  ${rows.join('\n  ')}`,
      )
      expect(curve.sampledKeyCount).toBe(sampleKeysMax)
      expect(curve.droppedCount).toBe(0)
    }
  })

  it.each(sampleSizes)(
    'has a mean absolute error ≤ 0.02 over every trace and size (%i keys)',
    (sampleKeysMax) => {
      const all = errors.get(sampleKeysMax)!
      expect(all.length).toBe(kinds.length * factors.length)
      const mean = all.reduce((a, b) => a + b, 0) / all.length
      console.log(
        `mrc, ${sampleKeysMax} keys: mean absolute error ${mean.toFixed(4)}, ` +
          `largest ${Math.max(...all).toFixed(4)}`,
      )
      expect(mean).toBeLessThanOrEqual(0.02)
    },
  )
})
