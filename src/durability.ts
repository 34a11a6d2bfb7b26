// How a write's acknowledgement waits for durability. The app hands every successful write's
// sequence number to waitFor() and answers the client only once it settles; a read waits for
// the version it returns, so no client sees a value before it is durable. The write-ahead log
// implements this (src/wal/durability.ts); durabilityNone is for a store with no log (tests).

export interface Durability {
  /**
   * Undefined when the sequence number is already durable (no await needed); otherwise settles
   * once it is, or rejects with StorageFailedError when the log can no longer make it durable.
   */
  waitFor(sequence: number): Promise<void> | undefined
  /** The newest sequence number that is durable now (every write up to it is). */
  durableSequence(): number
  /** Why writes are refused right now, or undefined when they are accepted. */
  refusal(): Refusal | undefined
  /**
   * Announces that this thread waits for room in the log, and returns a promise that settles
   * once the log frees some, fails, or a short bound passes. The caller announces, tries its
   * change once more, and only then awaits: a release between that try and the await still
   * settles the promise, so no wake-up is lost.
   */
  announceLogRoomWait(): Promise<void>
}

export type Refusal = 'storage_full' | 'storage_failed'

/** The log failed (a sync failed): the write was not acknowledged and may or may not survive. */
export class StorageFailedError extends Error {
  constructor() {
    super('the write-ahead log failed to sync: the write is not acknowledged')
  }
}

export const durabilityNone: Durability = {
  waitFor: () => undefined,
  durableSequence: () => Number.MAX_SAFE_INTEGER,
  refusal: () => undefined,
  announceLogRoomWait: () => Promise.resolve(),
}
