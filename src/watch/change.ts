import { decodeMediaType } from '../http/media-type.js'
import { valueText } from '../http/value-text.js'
import type { MutationRecord } from '../store/types.js'

// One change as the feed sends it: a log record (never a commit, which changes nothing) and its
// Server-Sent Events block, encoded once however many watchers receive it.
//
//   id: <sequence>
//   event: set | delete | expire | evict | clear
//   data: {"key":…,"version":<sequence>, and for a set "size","contentType","expiresAt"}
//
// A clear has the key null: it changes every key, so every watcher gets it whatever its prefix.

export type ChangeOp = 'set' | 'delete' | 'expire' | 'evict' | 'clear'
export const changeOps: readonly ChangeOp[] = ['set', 'delete', 'expire', 'evict', 'clear']

export class Change {
  readonly record: Exclude<MutationRecord, { op: 'commit' }>
  /**
   * Bytes it may hold in memory, about, once both of its texts are encoded: what the feed's
   * buffer is bounded by. Fixed when made, so that what is added is what is taken away.
   */
  readonly size: number
  #block: string | undefined
  #blockWithValue: string | undefined

  constructor(record: Exclude<MutationRecord, { op: 'commit' }>) {
    this.record = record
    // The key in the record and in two texts, two bytes a character; the value's bytes, and
    // up to twice as many again for its base64 or UTF-16 text; the rest is small and fixed.
    const valueSize = record.op === 'set' ? record.value.byteLength : 0
    this.size = 256 + 6 * record.key.length + 3 * valueSize
  }

  get sequence(): number {
    return this.record.sequence
  }

  get op(): ChangeOp {
    return this.record.op
  }

  /** Whether a watcher of `prefix` receives it. */
  concerns(prefix: string): boolean {
    return this.record.op === 'clear' || this.record.key.startsWith(prefix)
  }

  /** The event's text, with the value for a set when `withValue`. */
  block(withValue: boolean): string {
    if (withValue && this.record.op === 'set') {
      this.#blockWithValue ??= this.#encode(true)
      return this.#blockWithValue
    }
    this.#block ??= this.#encode(false)
    return this.#block
  }

  #encode(withValue: boolean): string {
    const record = this.record
    let data: Record<string, unknown>
    if (record.op === 'clear') data = { key: null, version: record.sequence }
    else if (record.op !== 'set') data = { key: record.key, version: record.sequence }
    else {
      const { mediaType, body } = decodeMediaType(record.contentType, record.value)
      data = {
        key: record.key,
        version: record.sequence,
        size: body.byteLength,
        contentType: mediaType,
        expiresAt: record.expiresAt === 0 ? null : record.expiresAt,
      }
      if (withValue) {
        const text = valueText(body)
        data.value = text.value
        data.encoding = text.encoding
      }
    }
    // JSON escapes CR and LF, the only characters that could end an SSE line early.
    return `id: ${record.sequence}\nevent: ${record.op}\ndata: ${JSON.stringify(data)}\n\n`
  }
}
