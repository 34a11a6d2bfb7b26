import type { Context } from 'hono'
import type { Log } from '../log.js'
import type { Store } from '../store/store.js'

// Evictions made visible where a user looks: the write that evicted says so in a response header
// (Slabkv-Evicted: <count>), and the thread that evicted logs a warning, at most one line per
// evictionLogIntervalMs, naming the flag that would keep the keys. A full store evicts silently
// otherwise: one 1 MB PUT evicted 1,031 keys with no sign.

/** On the answer to a write that evicted: how many keys it evicted to make room. */
export const evictedHeader = 'Slabkv-Evicted'

export const evictedHeaderDoc = {
  description:
    'Present when this write evicted least recently used keys to make room (the store was at ' +
    '--max-memory or --max-entries): how many.',
  schema: { type: 'integer' as const, minimum: 1 },
}

/** A warning every write would flood the log with on a full store; one per interval tells as much. */
export const evictionLogIntervalMs = 10_000

/** What one write evicted, across every attempt of it (whenLogged may run it more than once). */
export interface EvictionTally {
  forMemory: number
  forEntries: number
}

/** Evictions by the flag that forced them: what the log line and the header report. */
export class Evictions {
  readonly #store: Store
  readonly #log: Log
  /** Evicted since the last line, by limit; the line goes once the interval allows. */
  #pending: EvictionTally = { forMemory: 0, forEntries: 0 }
  /** When the first eviction the next line reports happened (epoch ms). */
  #pendingSinceMs = 0
  #lastLineMs = Number.NEGATIVE_INFINITY
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(store: Store, log: Log) {
    this.#store = store
    this.#log = log
  }

  /** A tally for one write, and its attempt wrapped to count what each run of it evicts. */
  counting<T>(attempt: () => T): { tally: EvictionTally; attempt: () => T } {
    const store = this.#store
    const tally: EvictionTally = { forMemory: 0, forEntries: 0 }
    return {
      tally,
      // The store runs each attempt synchronously on this thread's handle, so the handle's
      // counters move by what this attempt evicted and nothing else.
      attempt: () => {
        const forMemory = store.evictedForMemory
        const forEntries = store.evictedForEntries
        try {
          return attempt()
        } finally {
          tally.forMemory += store.evictedForMemory - forMemory
          tally.forEntries += store.evictedForEntries - forEntries
        }
      },
    }
  }

  /**
   * After a write ran: when it evicted, its answer carries the header (set on the context, so
   * whatever answer follows has it) and the log hears of it.
   */
  report(c: Context, tally: EvictionTally): void {
    const count = tally.forMemory + tally.forEntries
    if (count === 0) return
    c.header(evictedHeader, String(count))
    this.note(tally)
  }

  /**
   * The same for an answer built as a plain Response, which the context's headers do not reach:
   * the header to put on it (none when nothing was evicted); the log hears of it.
   */
  reportInto(headers: Record<string, string>, tally: EvictionTally): void {
    const count = tally.forMemory + tally.forEntries
    if (count === 0) return
    headers[evictedHeader.toLowerCase()] = String(count)
    this.note(tally)
  }

  /**
   * Counts evictions towards the next line. The first after a quiet interval is logged at once,
   * so the line comes when evictions start; later ones are summed into one line when the
   * interval since the last has passed.
   */
  note(tally: EvictionTally): void {
    if (this.#pending.forMemory + this.#pending.forEntries === 0) this.#pendingSinceMs = Date.now()
    this.#pending.forMemory += tally.forMemory
    this.#pending.forEntries += tally.forEntries
    if (this.#timer !== undefined) return
    const waitMs = this.#lastLineMs + evictionLogIntervalMs - Date.now()
    if (waitMs <= 0) {
      this.#flush()
      return
    }
    this.#timer = setTimeout(() => this.#flush(), waitMs)
    // A pending line never keeps a stopping thread alive; the counters in /v1/stats keep the count.
    this.#timer.unref()
  }

  #flush(): void {
    this.#timer = undefined
    const { forMemory, forEntries } = this.#pending
    const evicted = forMemory + forEntries
    if (evicted === 0) return
    const nowMs = Date.now()
    const stats = this.#store.stats()
    // The flags whose limits made these evictions, the one that made most first.
    const raise = [
      {
        count: forMemory,
        flag: `--max-memory (${stats.memorySizeMax} bytes of keys and values now)`,
      },
      { count: forEntries, flag: `--max-entries (${stats.entryCountMax} entries now)` },
    ]
      .filter(({ count }) => count > 0)
      .sort((a, b) => b.count - a.count)
      .map(({ flag }) => flag)
    this.#log.warn('evicted keys to make room: the store is full', {
      evicted,
      since: new Date(this.#pendingSinceMs).toISOString(),
      evictedFor: { '--max-memory': forMemory, '--max-entries': forEntries },
      hint: `raise ${raise.join(' or ')} to keep more keys`,
      // This line counts this thread's evictions; every thread's since the start, too.
      evictedTotal: stats.evictions,
      entries: stats.entryCount,
      entriesMax: stats.entryCountMax,
      bytes: stats.bytesUsed,
      bytesMax: stats.memorySizeMax,
    })
    this.#lastLineMs = nowMs
    this.#pending = { forMemory: 0, forEntries: 0 }
  }
}
