import assert from 'node:assert/strict'
import { type Slot, slotNone } from './layout.js'

// Open addressing with linear probing: key hash → slot. It knows nothing of LRU order or of
// where bytes live; the caller supplies the test that decides whether a slot holds the key.
//
// The table is a power of two at least twice the entry limit, so the load factor stays ≤ 0.5
// and probe runs stay short. Each slot's 32-bit hash is cached in the entry table, so a probe
// compares key bytes only when the full hashes agree.
//
// Deletion uses backward shift (Knuth 6.4, algorithm R) instead of tombstones: after a hole
// opens, later members of the same probe run move back into it when their home position allows,
// so lookups never wade through dead markers and the table never needs a rebuild.

export type SlotMatcher = (slot: Slot) => boolean

export class HashIndex {
  readonly #index: Int32Array
  readonly #hashes: Int32Array
  readonly #mask: number

  constructor(index: Int32Array, hashes: Int32Array) {
    this.#index = index
    this.#hashes = hashes
    this.#mask = index.length - 1
  }

  reset(): void {
    this.#index.fill(slotNone)
  }

  /**
   * The position of the slot with this hash that `matches` accepts, or, when there is none,
   * -(p + 1) where p is the empty position an insert of this hash belongs at.
   */
  find(hash: number, matches: SlotMatcher): number {
    const index = this.#index
    const hashes = this.#hashes
    const mask = this.#mask
    let position = hash & mask
    for (;;) {
      const slot = index[position]! as Slot
      if (slot === slotNone) return -(position + 1)
      if (hashes[slot] === hash && matches(slot)) return position
      position = (position + 1) & mask
    }
  }

  /** Stores `slot` at an empty position returned (encoded) by find(). */
  insertAt(position: number, slot: Slot, hash: number): void {
    this.#hashes[slot] = hash
    this.#index[position] = slot
  }

  /** The position holding `slot`, which must be indexed. */
  positionOf(slot: Slot): number {
    const index = this.#index
    const mask = this.#mask
    let position = this.#hashes[slot]! & mask
    for (let probeCount = 0; index[position] !== slot; probeCount++) {
      // A slot missing from its probe run is corruption; without this the walk never ends.
      assert(probeCount < index.length, 'slot is not in the hash index')
      position = (position + 1) & mask
    }
    return position
  }

  removeAt(position: number): void {
    const index = this.#index
    const hashes = this.#hashes
    const mask = this.#mask
    let hole = position
    let probe = position
    for (;;) {
      probe = (probe + 1) & mask
      const slot = index[probe]!
      if (slot === slotNone) break
      const home = hashes[slot]! & mask
      // The entry at `probe` may fill the hole unless its home lies cyclically in (hole, probe]:
      // moving it before its home would hide it from lookups.
      const homeInRun = hole <= probe ? hole < home && home <= probe : hole < home || home <= probe
      if (homeInRun) continue
      index[hole] = slot
      hole = probe
    }
    index[hole] = slotNone
  }

  get capacity(): number {
    return this.#index.length
  }

  slotAt(position: number): Slot {
    return this.#index[position]! as Slot
  }

  homeOf(hash: number): number {
    return hash & this.#mask
  }
}
