import type { StoreLimits } from '../../src/store/layout.js'
import type {
  Entry,
  MutationOp,
  SetOptions,
  StoreErrorCode,
  StoreResult,
} from '../../src/store/types.js'

// The store's contract in a few lines: a Map keeps insertion order, so deleting and re-inserting
// a key makes it the most recent, and the first key is the eviction candidate. Keys the store
// refuses never get in, so reads need no validation. Each call is given `now`, the one instant
// an operation sees. Each removal and each set takes the next sequence number, and `records`
// logs them in recordText's words, as onMutation reports them.

const utf8Size = (key: string) => new TextEncoder().encode(key).byteLength

/** One mutation record as text: `op key`, and for a set what it wrote. */
export function recordText(op: MutationOp, key: string, set?: Omit<Entry, 'version'>): string {
  if (!set) return `${op} ${key}`
  return `${op} ${key} ${set.expiresAt} ${set.contentType} [${set.value.join(',')}]`
}

export class ModelLru {
  readonly entries = new Map<string, Entry>()
  readonly records: string[] = []
  sequence = 0
  bytesUsed = 0

  constructor(readonly limits: StoreLimits) {}

  get(key: string, now: number, touch: boolean): Entry | undefined {
    const entry = this.#live(key, now)
    if (entry && touch) {
      this.entries.delete(key)
      this.entries.set(key, entry)
    }
    return entry
  }

  set(
    key: string,
    value: Uint8Array,
    now: number,
    o: SetOptions,
  ): StoreResult<{ version: number; created: boolean }> {
    const { keySizeMax, valueSizeMax, memorySizeMax } = this.limits
    const code = (refused: StoreErrorCode) => ({ ok: false, code: refused }) as const
    // The order of the checks is part of the contract: a cheap length test before any encoding.
    if (key.length === 0) return code('key_empty')
    if (key.length > keySizeMax) return code('key_too_large')
    if (!key.isWellFormed()) return code('key_invalid')
    if (utf8Size(key) > keySizeMax) return code('key_too_large')
    if (value.byteLength > valueSizeMax) return code('value_too_large')
    if (utf8Size(key) + value.byteLength > memorySizeMax) return code('entry_too_large')
    let expiresAt = o.expiresAt ?? 0
    if (o.ttlMs !== undefined) expiresAt = o.ttlMs > 0 && o.ttlMs < Infinity ? now + o.ttlMs : -1
    if (!(expiresAt >= 0 && expiresAt < Infinity)) return code('ttl_invalid')
    const old = this.#live(key, now)
    if (old && o.ifAbsent) return code('key_exists')
    if (o.ifVersion !== undefined && old?.version !== o.ifVersion) return code('version_mismatch')
    if (old) this.get(key, now, true) // Most recent first, so making room never evicts it.
    const size = old ? value.byteLength - old.value.byteLength : utf8Size(key) + value.byteLength
    this.#makeRoom(size, old ? 0 : 1, now)
    this.bytesUsed += size
    const contentType = o.contentType ?? 0
    const entry = { value: value.slice(), version: ++this.sequence, expiresAt, contentType }
    this.entries.set(key, entry)
    this.records.push(recordText('set', key, entry))
    return { ok: true, version: entry.version, created: old === undefined }
  }

  delete(key: string, now: number, ifVersion?: number): StoreResult<{ sequence: number }> {
    const entry = this.#live(key, now)
    if (!entry) return { ok: false, code: 'not_found' }
    if (ifVersion !== undefined && entry.version !== ifVersion) {
      return { ok: false, code: 'version_mismatch' }
    }
    this.remove(key, 'delete')
    return { ok: true, sequence: this.sequence }
  }

  clear(): void {
    this.entries.clear()
    this.bytesUsed = 0
    this.sequence++
    this.records.push(recordText('clear', ''))
  }

  /** Resident keys whose time has come, earliest first (ties in no particular order). */
  expiredKeys(now: number): string[] {
    const expired = [...this.entries].filter(([, e]) => e.expiresAt !== 0 && e.expiresAt <= now)
    return expired.sort(([, a], [, b]) => a.expiresAt - b.expiresAt).map(([key]) => key)
  }

  remove(key: string, op: Exclude<MutationOp, 'set' | 'clear'>): void {
    const entry = this.entries.get(key)!
    this.entries.delete(key)
    this.bytesUsed -= utf8Size(key) + entry.value.byteLength
    this.sequence++
    this.records.push(recordText(op, key))
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key)
    if (!entry || entry.expiresAt === 0 || entry.expiresAt > now) return entry
    this.remove(key, 'expire')
    return undefined
  }

  /** Expired entries go first, all of them, and only when something must go at all. */
  #makeRoom(bytes: number, count: number, now: number): void {
    const { entryCountMax, memorySizeMax } = this.limits
    const fits = () =>
      this.entries.size + count <= entryCountMax && this.bytesUsed + bytes <= memorySizeMax
    if (fits()) return
    for (const key of this.expiredKeys(now)) this.remove(key, 'expire')
    while (!fits()) this.remove(this.entries.keys().next().value!, 'evict')
  }
}
