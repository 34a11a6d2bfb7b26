import type { SetOptions } from './types.js'

// When a set's entry expires, from what the set asks for: a TTL from now (a client) or an
// absolute time (replay, which restores the time a logged set carried).

const nextAfterBits = new Float64Array(1)
const nextAfterWord = new BigUint64Array(nextAfterBits.buffer)

/** The least double greater than `x` (a non-negative finite number): one unit in the last place up. */
function nextAfter(x: number): number {
  if (x === 0) return Number.MIN_VALUE
  nextAfterBits[0] = x
  nextAfterWord[0]! += 1n
  return nextAfterBits[0]!
}

/**
 * When a set's entry expires, in epoch milliseconds (0: never), from its TTL (ttlMs wins) or the
 * absolute time replay passes; undefined when the one given is not a positive finite number.
 * `now` is called only for a TTL: most sets have none, and reading the clock is not free.
 */
export function expiresAtOf(
  options: SetOptions | undefined,
  now: () => number,
): number | undefined {
  if (options?.ttlMs !== undefined) {
    if (!(Number.isFinite(options.ttlMs) && options.ttlMs > 0)) return undefined
    const instant = now()
    // A TTL too small to move the clock (1e-9 ms on top of today's epoch milliseconds) would
    // make an entry expired at birth, which the rest of this hold of the lock would then have
    // to remove: a batch did not reserve room for that. It lives for the least time there is.
    return Math.max(instant + options.ttlMs, nextAfter(instant))
  }
  if (options?.expiresAt !== undefined && options.expiresAt !== 0) {
    if (!(Number.isFinite(options.expiresAt) && options.expiresAt > 0)) return undefined
    return options.expiresAt
  }
  return 0
}
