// How a write's acknowledgement waits for durability. The app hands every successful write's
// sequence number to waitFor() and answers the client only once it settles. The write-ahead
// log fills this in; until then nothing is persisted and acknowledgement is immediate.

export interface Durability {
  /** Undefined when the write is already as durable as it will get (no await needed). */
  waitFor(sequence: number): Promise<void> | undefined
}

export const durabilityNone: Durability = {
  waitFor: () => undefined,
}
