// Times to live, as clients send them (seconds, fractions allowed) and as Slabkv-Ttl reports them.

/**
 * The longest TTL taken, in seconds (about 31,700 years). The store keeps an expiry as
 * milliseconds since 1970 in a double; past 2^53 ms those are no longer whole numbers, and past
 * about 1.8e305 seconds they are not finite at all. 10^12 seconds from now stays well inside.
 */
export const ttlSecondsMax = 1e12

/** What a client is told when its TTL is refused. */
export const ttlRefusal = `The TTL must be a positive number of seconds, at most ${ttlSecondsMax.toFixed(0)}`

/** True for a TTL the store takes: positive, finite and at most ttlSecondsMax seconds. */
export function isTtlSeconds(seconds: number): boolean {
  return seconds > 0 && seconds <= ttlSecondsMax
}

/** Seconds to live from a query string value; undefined when absent, NaN when invalid. */
export function parseTtlSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  if (!/^\d+(\.\d+)?$/.test(text)) return Number.NaN
  const seconds = Number(text)
  return isTtlSeconds(seconds) ? seconds : Number.NaN
}

/**
 * The seconds left until expiresAt, with three decimals and never in exponent form (which
 * toFixed switches to at 10^21): an expiry an older version stored may lie that far ahead.
 */
export function formatTtlSeconds(expiresAt: number, nowMs: number): string {
  const leftMs = Math.max(0, Math.round(expiresAt - nowMs))
  if (leftMs <= Number.MAX_SAFE_INTEGER) return (leftMs / 1000).toFixed(3)
  const whole = BigInt(leftMs)
  return `${whole / 1000n}.${(whole % 1000n).toString().padStart(3, '0')}`
}
