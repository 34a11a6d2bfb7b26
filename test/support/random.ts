// Randomized tests take their seed from SEED (to replay a failure) or pick one, and print it.

export function testSeed(label: string): number {
  const fromEnv = process.env.SEED
  const seed = fromEnv === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(fromEnv)
  console.log(`${label} seed: ${seed} (replay with SEED=${seed})`)
  return seed
}

/** mulberry32: a small, fast, seedable PRNG; good enough to drive tests. */
export function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** `size` bytes drawn from `random`. */
export function randomBytes(random: () => number, size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(random() * 256)
  return bytes
}
