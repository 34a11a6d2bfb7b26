// The client's vocabulary (src/client/index.ts): what each call takes and gives back. Field names
// follow the HTTP API's (docs/api.md), with units in the name where the API leaves them implicit
// (ttlSeconds).

/** What every call takes. */
export interface CallOptions {
  /** Aborts this call: it rejects with the signal's reason. */
  signal?: AbortSignal
}

/** A stored value, as GET /v1/kv/{key} answers it. */
export interface Entry {
  /** The bytes, exactly as stored (a Buffer: `value.toString()` is the UTF-8 text). */
  value: Buffer
  /** The media type it was stored with (application/octet-stream when none was given). */
  contentType: string
  /** The sequence number of the write that stored it: its ETag, what ifVersion compares. */
  version: number
  /** Seconds left before it expires, when the server answered; null when it never expires. */
  ttlSeconds: number | null
}

export interface SetOptions extends CallOptions {
  /** Expire this many seconds after the write (fractions allowed); never by default. */
  ttlSeconds?: number
  /**
   * The media type to store. By default text/plain; charset=utf-8 for a string value (as fetch
   * sends a string body) and none for bytes, which the server stores as
   * application/octet-stream.
   */
  contentType?: string
  /** Write only if the key is at this version (If-Match: "n"); else 412 precondition_failed. */
  ifVersion?: number
  /** Write only if the key does not exist (If-None-Match: *); else 412 precondition_failed. */
  ifAbsent?: boolean
}

export interface SetResult {
  /** The new version (the ETag). */
  version: number
  /** True when the key was created (201), false when a value was replaced (200). */
  created: boolean
  /** Keys the LRU evicted to make room for this write (Slabkv-Evicted), usually 0. */
  evicted: number
}

export interface DeleteOptions extends CallOptions {
  /** Delete only if the key is at this version (If-Match: "n"); else 412 precondition_failed. */
  ifVersion?: number
}

export interface ListOptions extends CallOptions {
  /** Keys that start with it; every key by default. */
  prefix?: string
  /** Keys per request, 1 to 1000 (the default). */
  pageSize?: number
  /** Continue a listing from a page's cursor. */
  cursor?: string
}

/** One key of a listing. */
export interface ListEntry {
  key: string
  /** The value's size in bytes. */
  size: number
  contentType: string
  version: number
  ttlSeconds: number | null
}

/** One page of a listing. */
export interface ListPage {
  entries: ListEntry[]
  /** Where the next page starts; null on the last page. */
  cursor: string | null
  /**
   * Every change up to this sequence number is reflected in the page (Slabkv-Sequence): watching
   * from the first page's sequence misses nothing after the listing.
   */
  sequence: number
}

/** The ops of a batch (POST /v1/batch), applied whole or not at all. */
export type BatchOp =
  | { op: 'get'; key: string }
  | {
      op: 'set'
      key: string
      value: string | Uint8Array
      /** As for set(): text/plain; charset=utf-8 for a string by default. */
      contentType?: string
      ttlSeconds?: number
      ifVersion?: number
      ifAbsent?: boolean
    }
  | { op: 'delete'; key: string; ifVersion?: number }

/** A get's result in a batch: the value, or undefined for no such key. */
export interface BatchEntry {
  value: Buffer
  contentType: string
  version: number
}

/** The result of one op: a get's entry or undefined, a set's version, a delete's success. */
export type BatchResult<Op extends BatchOp> = Op extends { op: 'get' }
  ? BatchEntry | undefined
  : Op extends { op: 'set' }
    ? { version: number }
    : boolean

/** The results of a batch, one per op, typed by each op. */
export type BatchResults<Ops extends readonly BatchOp[]> = {
  -readonly [I in keyof Ops]: BatchResult<Ops[I]>
}

/** The kinds of change the feed sends. */
export type ChangeType = 'set' | 'delete' | 'expire' | 'evict' | 'clear'

interface ChangeBase {
  /** The change's sequence number: the version it gave the key, and where a resume starts. */
  sequence: number
  version: number
}

/** One change from the feed (GET /v1/watch). */
export type ChangeEvent =
  | (ChangeBase & {
      type: 'set'
      key: string
      /** The value's size in bytes. */
      size: number
      contentType: string
      /** When it expires, in epoch milliseconds, or null. */
      expiresAt: number | null
      /** The bytes, with `values: true`. */
      value?: Buffer
    })
  | (ChangeBase & { type: 'delete' | 'expire' | 'evict'; key: string })
  /** The whole store emptied: it reaches every watch, whatever its prefix. */
  | (ChangeBase & { type: 'clear'; key: null })

export interface WatchOptions extends CallOptions {
  /** Keys that start with it; every key by default. */
  prefix?: string
  /**
   * The changes after this sequence number (a listing's sequence, or the last change seen), or
   * 'now', the default: the changes from now on.
   */
  since?: number | 'now'
  /** Set events carry the value. */
  values?: boolean
  /** Only these kinds; all by default. */
  types?: readonly ChangeType[]
  /** A stream that brings nothing for this long, not even a heartbeat, is resumed (60 s). */
  idleTimeoutMs?: number
  /** Told before each wait to resume a lost stream: why, how long, after which id. */
  onReconnect?: (reconnect: { reason: string; delayMs: number; lastEventId: string }) => void
}

/** GET /v1/stats; docs/operations.md explains each field. */
export interface Stats {
  entries: number
  entriesMax: number
  bytes: number
  bytesMax: number
  hits: number
  misses: number
  hitRatio: number
  sets: number
  deletes: number
  evictions: number
  expirations: number
  opsPerSecond: number
  uptimeSeconds: number
  threads: number
  sequence: number
  arenaBytesMoved: number
  wal: {
    fsync: 'always' | 'everysec' | 'no' | null
    state: string
    durableSequence: number
    durableLag: number
    groupCommits: number
    recordsWritten: number
    bytesWritten: number
    recordsPerGroupCommit: number
    snapshots: number
    recovery: Record<string, unknown> | null
  }
  watch: { streams: number }
  missRatioCurve: {
    points: { memorySize: number; hitRatio: number }[]
    sampledKeyCount: number
    accessCount: number
    droppedCount: number
    since: number
  } | null
  [field: string]: unknown
}
