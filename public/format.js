import { ApiError, NetworkError } from './api.js'

// How numbers, sizes, durations and errors read on screen. One locale ('en') everywhere, so a
// screenshot or a bug report reads the same whoever took it.

const integer = new Intl.NumberFormat('en', { maximumFractionDigits: 0 })
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 })
const oneDecimal = new Intl.NumberFormat('en', { maximumFractionDigits: 1 })

/** @param {number} count */
export function formatCount(count) {
  return count >= 100_000 ? compact.format(count) : integer.format(count)
}

/** @param {number} value */
export function formatDecimal(value) {
  return oneDecimal.format(value)
}

/**
 * Bytes in binary units, as the server's flags take them (KiB, MiB, GiB).
 * @param {number} size
 */
export function formatBytes(size) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = size
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${oneDecimal.format(value)} ${units[unit]}`
}

/**
 * A ratio 0..1 as a percentage.
 * @param {number} ratio
 */
export function formatPercent(ratio) {
  return `${oneDecimal.format(ratio * 100)}%`
}

/**
 * Seconds as the largest two units that matter: "42 s", "3 min 5 s", "2 h 10 min", "4 d 1 h".
 * @param {number} seconds
 */
export function formatDuration(seconds) {
  if (seconds < 10) return `${oneDecimal.format(seconds)} s`
  const whole = Math.round(seconds)
  if (whole < 60) return `${whole} s`
  const minutes = Math.floor(whole / 60)
  if (minutes < 60) return `${minutes} min ${whole % 60} s`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours} h ${minutes % 60} min`
  return `${Math.floor(hours / 24)} d ${hours % 24} h`
}

/**
 * What a write's answer says it evicted (its Slabkv-Evicted header) as a sentence to add to its
 * outcome, or '' when it evicted nothing: keys lost to make room must not go unnoticed.
 * @param {Response} response
 */
export function evictedByWrite(response) {
  const count = Number(response.headers.get('Slabkv-Evicted') ?? 0)
  if (!(count > 0)) return ''
  const keys = `${formatCount(count)} least recently used key${count === 1 ? '' : 's'}`
  return ` It evicted ${keys} to make room: the store is full.`
}

/**
 * What went wrong, in one line a person can act on: the API's status, code and message, or
 * why no answer came.
 * @param {unknown} error
 */
export function describeError(error) {
  if (error instanceof ApiError) return `${error.status} ${error.code}: ${error.detail}`
  if (error instanceof NetworkError) return error.message
  return `Unexpected error: ${error instanceof Error ? error.message : String(error)}`
}
