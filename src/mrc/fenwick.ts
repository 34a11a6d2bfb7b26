// A Fenwick (binary indexed) tree of doubles over positions 1..capacity: add at a position and
// sum a prefix, each in O(log capacity). The SHARDS estimator (shards.ts) keeps each sampled
// key's size at the time of its latest access, so the bytes of the distinct keys accessed since
// some time are one prefix sum away.

export class Fenwick {
  readonly capacity: number
  readonly #tree: Float64Array
  #total = 0

  constructor(capacity: number) {
    this.capacity = capacity
    this.#tree = new Float64Array(capacity + 1)
  }

  /** The sum of every position. */
  get total(): number {
    return this.#total
  }

  add(position: number, amount: number): void {
    const tree = this.#tree
    for (let i = position; i <= this.capacity; i += i & -i) tree[i]! += amount
    this.#total += amount
  }

  /** The sum of positions 1..position. */
  prefix(position: number): number {
    const tree = this.#tree
    let sum = 0
    for (let i = position; i > 0; i -= i & -i) sum += tree[i]!
    return sum
  }

  /** Empties the tree, then sets positions 1..values.length to `values`, in O(capacity). */
  rebuild(values: ArrayLike<number>): void {
    const tree = this.#tree
    tree.fill(0)
    let total = 0
    for (let i = 1; i <= values.length; i++) {
      tree[i] = values[i - 1]!
      total += values[i - 1]!
    }
    // Each node passes its sum up once its own children have added theirs (they come first).
    for (let i = 1; i <= this.capacity; i++) {
      const parent = i + (i & -i)
      if (parent <= this.capacity) tree[parent]! += tree[i]!
    }
    this.#total = total
  }
}
