import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Evictions, evictionLogIntervalMs } from '../../../src/http/evictions.js'
import { createLog } from '../../../src/log.js'
import { Store } from '../../../src/store/store.js'

// The eviction warning's rate limit, on Vitest's fake clock: which evictions make a line at once,
// which wait for the interval, and that every eviction is counted in some line. The header and
// the line from a real server are in test/e2e/evictions.test.ts.

const bytes = (size: number) => new Uint8Array(size)

function setup() {
  const lines: Record<string, unknown>[] = []
  const log = createLog((line) => lines.push(JSON.parse(line) as Record<string, unknown>))
  const store = Store.create({
    limits: {
      entryCountMax: 4,
      memorySizeMax: 100,
      keySizeMax: 16,
      valueSizeMax: 100,
      headroomPerMille: 0,
    },
  })
  const evictions = new Evictions(store, log)
  let written = 0
  /** Sets a new key of `size` value bytes; returns what it evicted, as a route would count it. */
  const set = (size: number) => {
    const { tally, attempt } = evictions.counting(() => store.set(`k${written++}`, bytes(size)))
    attempt()
    evictions.note(tally)
    return tally
  }
  const warnings = () => lines.filter((line) => line.level === 'warn')
  return { set, warnings, store }
}

describe('the eviction warning', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.parse('2026-05-01T12:00:00Z') })
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('is logged when evictions start, then at most once an interval with the count since', () => {
    const { set, warnings } = setup()
    // Four entries of 20 bytes fit both limits; nothing is said while nothing is evicted.
    for (let i = 0; i < 4; i++) expect(set(18)).toEqual({ forMemory: 0, forEntries: 0 })
    expect(warnings()).toEqual([])

    // The first eviction is told at once, with the flag whose limit made it.
    expect(set(18)).toEqual({ forMemory: 0, forEntries: 1 })
    expect(warnings()).toHaveLength(1)
    expect(warnings()[0]).toMatchObject({
      msg: 'evicted keys to make room: the store is full',
      evicted: 1,
      since: '2026-05-01T12:00:00.000Z',
      evictedFor: { '--max-memory': 0, '--max-entries': 1 },
      hint: 'raise --max-entries (4 entries now) to keep more keys',
      entries: 4,
      entriesMax: 4,
      evictedTotal: 1,
    })

    // Within the interval, evictions are counted, not told.
    vi.advanceTimersByTime(1000)
    set(18) // one more for the count
    vi.advanceTimersByTime(1000)
    expect(set(78)).toEqual({ forMemory: 2, forEntries: 1 }) // 80 bytes: one 20-byte entry stays
    expect(warnings()).toHaveLength(1)

    // Once the interval has passed, one line tells all of them, from the first one's time.
    vi.advanceTimersByTime(evictionLogIntervalMs - 2000 - 1)
    expect(warnings()).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(warnings()).toHaveLength(2)
    expect(warnings()[1]).toMatchObject({
      evicted: 4,
      since: '2026-05-01T12:00:01.000Z',
      evictedFor: { '--max-memory': 2, '--max-entries': 2 },
      hint: 'raise --max-memory (100 bytes of keys and values now) or --max-entries (4 entries now) to keep more keys',
      evictedTotal: 5,
    })

    // A quiet interval later, the next eviction is told at once again.
    vi.advanceTimersByTime(evictionLogIntervalMs)
    expect(warnings()).toHaveLength(2)
    set(78) // both entries go: 20 + 80 + 80 bytes are more than 100
    expect(warnings()).toHaveLength(3)
    expect(warnings()[2]).toMatchObject({
      evicted: 2,
      evictedFor: { '--max-memory': 2, '--max-entries': 0 },
      hint: 'raise --max-memory (100 bytes of keys and values now) to keep more keys',
    })
  })

  it('says nothing for writes that evict nothing, however many', () => {
    const { set, warnings } = setup()
    for (let i = 0; i < 4; i++) set(10)
    vi.advanceTimersByTime(10 * evictionLogIntervalMs)
    expect(warnings()).toEqual([])
  })
})
