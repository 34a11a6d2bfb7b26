import assert from 'node:assert/strict'

// What every benchmark shares: the median it reports, the seeded generator that makes every run
// of a benchmark replay the same workload, and the load benchmarks' common options.

/** The median; the mean of the two middle values for an even count; NaN for none. */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** mulberry32: a small seeded generator, so every run replays the same keys and requests. */
export function createRandom(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/**
 * The options every load benchmark takes (bench:http, bench:wal, bench:peers), for parseArgs:
 * measured runs per scenario and system, seconds of each, seconds of discarded warm-up load
 * before each, and client connections.
 */
export function loadOptions(warmupSDefault: number) {
  return {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: String(warmupSDefault) },
    connections: { type: 'string', default: '32' },
  } as const
}

export interface LoadSettings {
  /** Measurements per scenario per system; the figures reported are their medians. */
  runCount: number
  /** Seconds each measurement lasts. */
  durationS: number
  /** Seconds of load, discarded, before each measurement. */
  warmupS: number
  connectionCount: number
}

/** Parses and checks loadOptions' values; `runCountMin` 0 lets a benchmark run nothing but a profile. */
export function loadSettings(
  args: { runs: string; duration: string; warmup: string; connections: string },
  runCountMin = 1,
): LoadSettings {
  const settings = {
    runCount: Number(args.runs),
    durationS: Number(args.duration),
    warmupS: Number(args.warmup),
    connectionCount: Number(args.connections),
  }
  const { runCount, durationS, warmupS, connectionCount } = settings
  assert(
    Number.isSafeInteger(runCount) && runCount >= runCountMin,
    `--runs must be an integer ≥ ${runCountMin}`,
  )
  assert(Number.isSafeInteger(durationS) && durationS >= 1, '--duration must be whole seconds ≥ 1')
  assert(Number.isSafeInteger(warmupS) && warmupS >= 1, '--warmup must be whole seconds ≥ 1')
  assert(Number.isSafeInteger(connectionCount) && connectionCount >= 1, '--connections must be ≥ 1')
  return settings
}
