import assert from 'node:assert/strict'
import { parseArgs } from 'node:util'
import { LRUCache } from 'lru-cache'
import type { StoreLimits } from '../src/store/layout.js'
import { storeLimitsDefault } from '../src/store/layout.js'
import { Store } from '../src/store/store.js'
import { createRandom, median } from './measure.js'
import { renderTable, runContext, writeResults } from './report.js'

// The in-process store benchmark: the number that moves when src/store changes. One thread, no
// HTTP, no log: our Store against lru-cache, side by side in the same process, on the same keys
// and the same Uint8Array values.
//
// Each scenario builds a fresh, full instance of each system, warms both up with one discarded
// run, then times a fixed number of operations per run with process.hrtime.bigint. Runs
// alternate between the systems (A B, then B A, ...) so that a noisy neighbour or a CPU frequency
// change lands on both, and the figure reported is the median of the runs. A full GC precedes
// every timed region, so a run pays for the garbage it makes and not for the garbage the
// previous one left behind. Every timed loop returns a total that is checked against what the
// operations must have done (every get hits, every delete deletes) and added to a sink printed
// at the end, which also keeps the optimizer from dropping the work.
//
// Two differences are part of what the systems are, and the ratios include them: our get copies
// the value out of the shared buffer (the arena may move it once the lock is released), where
// lru-cache returns the caller's own object; and we hash the key's characters on every
// operation, where a Map reuses the hash V8 caches in a string that has been hashed before. The
// keys here are reused strings, so lru-cache never hashes during a timed run; a server decoding
// a fresh key string per request would pay that hash in both systems.
//
// Not measured here: lock contention between threads (test/concurrency), the mutation listener
// the log hangs on (no onMutation is passed), and HTTP (the autocannon benchmark).

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    ops: { type: 'string', default: '1000000' },
    // Runs only the scenarios whose name starts with this, e.g. for a CPU profile of one path.
    scenario: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
  },
})
/** Timed runs per scenario per system; the reported figure is their median. */
const runCount = Number(args.runs)
/** Operations per timed run (delete runs use half as many, in whole rounds of entryCount). */
const opCount = Number(args.ops)
/** Prints the table without touching bench/RESULTS.md or bench/results/store.json. */
const dryRun = args['dry-run']
assert(Number.isSafeInteger(runCount) && runCount >= 1, '--runs must be a positive integer')
assert(Number.isSafeInteger(opCount) && opCount >= 1, '--ops must be a positive integer')

const gc = globalThis.gc
assert(gc, 'run node with --expose-gc: the bench collects garbage before each timed region')

const entryCount = 100_000
const keySize = 16
const valueSize = 100
/** Twice the capacity, cycled in order: every key set is the one evicted entryCount sets ago. */
const keySpaceSize = 2 * entryCount
const limits: StoreLimits = {
  ...storeLimitsDefault,
  entryCountMax: entryCount,
  memorySizeMax: entryCount * (keySize + valueSize),
}
const lruCacheOptions = { max: entryCount }
const seed = 0x5eed

const random = createRandom(seed)

/** 'key:' and 12 digits. Built from char codes so V8 makes a flat string, as a decoded key is. */
function keyOf(n: number): string {
  const text = `key:${String(n).padStart(keySize - 4, '0')}`
  return String.fromCharCode(...Array.from(text, (c) => c.charCodeAt(0)))
}
const keys = Array.from({ length: keySpaceSize }, (_, n) => keyOf(n))
assert.equal(keys[keySpaceSize - 1]!.length, keySize)

// Two ways a key reaches the store, and each scenario runs both:
// - reused: the timed loops pass the same string objects over and over. V8 caches a string's
//   hash inside it, so lru-cache's Map never hashes, and equal keys are the same object. The
//   best case for a Map, and what a program that keeps its key strings sees.
// - fresh: each operation cuts its key out of a request path, as a server does when it parses
//   a URL: a new string every time, which a Map must hash and compare by content. The slice is
//   the same work for both systems (about 80 ns, measured) and is included in both figures.
const pathPrefix = '/v1/kv/'
const paths = keys.map((key) => pathPrefix + key)
let freshKeys = false
function keyAt(n: number): string {
  return freshKeys ? paths[n]!.slice(pathPrefix.length) : keys[n]!
}
/** The values the instances are filled with; lru-cache holds these very objects. */
const values = Array.from({ length: entryCount }, (_, n) => new Uint8Array(valueSize).fill(n))
/** The values timed sets write: many distinct objects, so lru-cache always sees a new value. */
const valuePool = Array.from({ length: 1024 }, (_, n) => new Uint8Array(valueSize).fill(~n))
const valuePoolMask = valuePool.length - 1

// Pre-generated so the timed loops read an array instead of calling the generator.
const pickCount = 2 ** 20
const pickMask = pickCount - 1
/** Random resident keys, read from a start that moves each run. */
const picks = Uint32Array.from({ length: pickCount }, () => Math.floor(random() * entryCount))
/** For the mix: 1 marks a set (10% of them), 0 a get. */
const setFlags = Uint8Array.from({ length: pickCount }, () => (random() < 0.1 ? 1 : 0))
/** A random order of all the resident keys, for the delete rounds. */
const deleteOrder = Uint32Array.from({ length: entryCount }, (_, n) => n)
for (let i = entryCount - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1))
  const swap = deleteOrder[i]!
  deleteOrder[i] = deleteOrder[j]!
  deleteOrder[j] = swap
}

let sink = 0

/** Times `body` after a full GC, checks its total against `expected`, and sinks it. */
function timed(body: () => number, expected: number): number {
  gc!()
  const start = process.hrtime.bigint()
  const total = body()
  const elapsedNs = Number(process.hrtime.bigint() - start)
  assert.equal(total, expected, 'an operation did not do what the scenario needs')
  sink += total
  return elapsedNs
}

function filledStore(): Store {
  const store = Store.create({ limits })
  fillStore(store)
  return store
}

function fillStore(store: Store): void {
  for (let n = 0; n < entryCount; n++) assert(store.set(keys[n]!, values[n]!).ok)
}

function filledCache(): LRUCache<string, Uint8Array> {
  const cache = new LRUCache<string, Uint8Array>(lruCacheOptions)
  fillCache(cache)
  return cache
}

function fillCache(cache: LRUCache<string, Uint8Array>): void {
  for (let n = 0; n < entryCount; n++) cache.set(keys[n]!, values[n]!)
}

// The timed loops: one per scenario per system, so every call site in them sees one receiver
// type. Our set refuses by returning a value, so its loops count the sets that succeeded;
// lru-cache's set cannot refuse these entries, so its loops are checked by the cache's size.

function getStore(store: Store, count: number, start: number): number {
  let size = 0
  for (let i = 0; i < count; i++) {
    const entry = store.get(keyAt(picks[(start + i) & pickMask]!))
    if (entry !== undefined) size += entry.value.byteLength
  }
  return size
}

function getCache(cache: LRUCache<string, Uint8Array>, count: number, start: number): number {
  let size = 0
  for (let i = 0; i < count; i++) {
    const value = cache.get(keyAt(picks[(start + i) & pickMask]!))
    if (value !== undefined) size += value.byteLength
  }
  return size
}

/** Sets keys[cursor], keys[cursor + 1], ... (mod keySpaceSize): resident ones, or evicting ones. */
function setStore(store: Store, count: number, start: number, cursor: number | null): number {
  let setCount = 0
  for (let i = 0; i < count; i++) {
    const n = cursor === null ? picks[(start + i) & pickMask]! : (cursor + i) % keySpaceSize
    if (store.set(keyAt(n), valuePool[i & valuePoolMask]!).ok) setCount++
  }
  return setCount
}

function setCache(
  cache: LRUCache<string, Uint8Array>,
  count: number,
  start: number,
  cursor: number | null,
): number {
  for (let i = 0; i < count; i++) {
    const n = cursor === null ? picks[(start + i) & pickMask]! : (cursor + i) % keySpaceSize
    cache.set(keyAt(n), valuePool[i & valuePoolMask]!)
  }
  return cache.size === entryCount ? count : -1
}

function deleteStore(store: Store): number {
  let deleteCount = 0
  for (let i = 0; i < entryCount; i++) {
    if (store.delete(keyAt(deleteOrder[i]!)).ok) deleteCount++
  }
  return deleteCount
}

function deleteCache(cache: LRUCache<string, Uint8Array>): number {
  let deleteCount = 0
  for (let i = 0; i < entryCount; i++) {
    if (cache.delete(keyAt(deleteOrder[i]!))) deleteCount++
  }
  return deleteCount
}

/** Gets count bytes; sets count 1 each (for lru-cache, when the cache stays full). */
function mixStore(store: Store, count: number, start: number): number {
  let total = 0
  for (let i = 0; i < count; i++) {
    const p = (start + i) & pickMask
    const key = keyAt(picks[p]!)
    if (setFlags[p] === 1) {
      if (store.set(key, valuePool[p & valuePoolMask]!).ok) total += 1
    } else {
      const entry = store.get(key)
      if (entry !== undefined) total += entry.value.byteLength
    }
  }
  return total
}

function mixCache(cache: LRUCache<string, Uint8Array>, count: number, start: number): number {
  let total = 0
  for (let i = 0; i < count; i++) {
    const p = (start + i) & pickMask
    const key = keyAt(picks[p]!)
    if (setFlags[p] === 1) {
      if (cache.set(key, valuePool[p & valuePoolMask]!).size === entryCount) total += 1
    } else {
      const value = cache.get(key)
      if (value !== undefined) total += value.byteLength
    }
  }
  return total
}

function mixExpected(count: number, start: number): number {
  let total = 0
  for (let i = 0; i < count; i++) total += setFlags[(start + i) & pickMask] === 1 ? 1 : valueSize
  return total
}

type SystemName = 'slabkv' | 'lruCache'

/** Runs one timed measurement of `count` operations from pick `start`; returns nanoseconds. */
type Measure = (count: number, start: number) => number

interface Scenario {
  name: string
  count: number
  /** Builds fresh, full instances of both systems and returns how to measure each. */
  prepare(): Record<SystemName, Measure>
}

const deleteRoundCount = Math.max(1, Math.round(opCount / 2 / entryCount))

const scenarios: Scenario[] = [
  {
    name: 'get (hit)',
    count: opCount,
    prepare() {
      const store = filledStore()
      const cache = filledCache()
      return {
        slabkv: (count, start) => timed(() => getStore(store, count, start), count * valueSize),
        lruCache: (count, start) => timed(() => getCache(cache, count, start), count * valueSize),
      }
    },
  },
  {
    name: 'set (replace)',
    count: opCount,
    prepare() {
      const store = filledStore()
      const cache = filledCache()
      return {
        slabkv: (count, start) => timed(() => setStore(store, count, start, null), count),
        lruCache: (count, start) => timed(() => setCache(cache, count, start, null), count),
      }
    },
  },
  {
    name: 'set (evict)',
    count: opCount,
    prepare() {
      // Both hold keys 0..entryCount-1, so the next key in the cycle is absent and every set
      // evicts the least recently used entry. Each system keeps its own place in the cycle.
      const store = filledStore()
      const cache = filledCache()
      let storeCursor = entryCount
      let cacheCursor = entryCount
      return {
        slabkv: (count) => {
          const evictionCountBefore = store.stats().evictions
          const elapsedNs = timed(() => setStore(store, count, 0, storeCursor), count)
          assert.equal(store.stats().evictions - evictionCountBefore, count, 'a set did not evict')
          storeCursor = (storeCursor + count) % keySpaceSize
          return elapsedNs
        },
        lruCache: (count) => {
          assert(!cache.has(keys[cacheCursor]!), 'the next set would not evict')
          const elapsedNs = timed(() => setCache(cache, count, 0, cacheCursor), count)
          cacheCursor = (cacheCursor + count) % keySpaceSize
          return elapsedNs
        },
      }
    },
  },
  {
    name: 'delete',
    count: deleteRoundCount * entryCount,
    prepare() {
      // Each round deletes every resident key in a random order, timed, then refills, untimed.
      const store = filledStore()
      const cache = filledCache()
      const rounds = (remove: () => number, refill: () => void) => {
        let elapsedNs = 0
        for (let round = 0; round < deleteRoundCount; round++) {
          elapsedNs += timed(remove, entryCount)
          refill()
        }
        return elapsedNs
      }
      return {
        slabkv: () =>
          rounds(
            () => deleteStore(store),
            () => fillStore(store),
          ),
        lruCache: () =>
          rounds(
            () => deleteCache(cache),
            () => fillCache(cache),
          ),
      }
    },
  },
  {
    name: 'mix 90% get / 10% set',
    count: opCount,
    prepare() {
      const store = filledStore()
      const cache = filledCache()
      return {
        slabkv: (count, start) =>
          timed(() => mixStore(store, count, start), mixExpected(count, start)),
        lruCache: (count, start) =>
          timed(() => mixCache(cache, count, start), mixExpected(count, start)),
      }
    },
  },
]

interface ScenarioResult {
  scenario: string
  opCountPerRun: number
  slabkvOpsPerSecond: number
  lruCacheOpsPerSecond: number
  /** slabkv / lru-cache, from the medians. */
  ratio: number
  /**
   * The lowest and highest slabkv / lru-cache of a single run, whose two measurements ran back to
   * back: how far the noise moved the ratio.
   */
  ratioRunRange: [number, number]
  /** Every timed run, in run order, for judging the noise behind a median. */
  slabkvOpsPerSecondRuns: number[]
  lruCacheOpsPerSecondRuns: number[]
}

function runScenario(scenario: Scenario): ScenarioResult {
  const measure = scenario.prepare()
  const opsPerSecondRuns: Record<SystemName, number[]> = { slabkv: [], lruCache: [] }
  // Run -1 is the warm-up: the same work, discarded.
  for (let run = -1; run < runCount; run++) {
    const start = (run + 1) * 104_729 // A prime stride, so each run reads other picks.
    const order: SystemName[] = run % 2 === 0 ? ['slabkv', 'lruCache'] : ['lruCache', 'slabkv']
    for (const system of order) {
      const elapsedNs = measure[system](scenario.count, start)
      if (run >= 0) opsPerSecondRuns[system].push((scenario.count * 1e9) / elapsedNs)
    }
  }
  const slabkv = median(opsPerSecondRuns.slabkv)
  const lruCache = median(opsPerSecondRuns.lruCache)
  const runRatios = opsPerSecondRuns.slabkv.map(
    (rate, run) => rate / opsPerSecondRuns.lruCache[run]!,
  )
  const round3 = (n: number) => Math.round(n * 1000) / 1000
  return {
    scenario: scenario.name,
    opCountPerRun: scenario.count,
    slabkvOpsPerSecond: Math.round(slabkv),
    lruCacheOpsPerSecond: Math.round(lruCache),
    ratio: round3(slabkv / lruCache),
    ratioRunRange: [round3(Math.min(...runRatios)), round3(Math.max(...runRatios))],
    slabkvOpsPerSecondRuns: opsPerSecondRuns.slabkv.map(Math.round),
    lruCacheOpsPerSecondRuns: opsPerSecondRuns.lruCache.map(Math.round),
  }
}

// Bytes per entry, in several figures, because the two systems keep different things:
// - payloadSize: the key and value bytes themselves, 16 + 100. Both systems must hold these.
// - slabkv structureSize: everything in the SharedArrayBuffer beyond memorySizeMax, the key and
//   value capacity: the entry table (hash, links, expiry, sizes, version: 47 bytes), the hash
//   index (2^18 i32 positions for 100,000 entries), each arena record's 4-byte header, the
//   arena's headroom, and the fixed header. Exact, from the layout, and allocated up front. The
//   WAL ring (4 MiB by default) is a fixed cost of the log, not of entries, and is left out.
// - lru-cache heapGrowthSize: V8 heap plus array-buffer bytes gained by building a cache and
//   filling it with the bench's existing keys and values, so the strings and Uint8Arrays, which
//   the caller holds anyway, are not counted: this is the cache's own structure (its Map, key
//   and value lists, links). heapGrowthWithPayloadSize fills a cache with keys and values made
//   for it and counts them too: what holding an entry costs in all, to set beside slabkv's
//   byteLength / entryCountMax.
interface MemoryResult {
  payloadSize: number
  slabkvStructureSize: number
  slabkvTotalSize: number
  lruCacheHeapGrowthSize: number
  lruCacheHeapGrowthWithPayloadSize: number
}

function heapSize(): number {
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.arrayBuffers
}

function heapGrowthPerEntry(fill: (cache: LRUCache<string, Uint8Array>) => void): number {
  // One call per attempt: a cache left in this frame's variables would stay alive and be
  // collected during the next attempt, cancelling its growth.
  const attempt = () => {
    gc!()
    gc!()
    const before = heapSize()
    const cache = new LRUCache<string, Uint8Array>(lruCacheOptions)
    fill(cache)
    gc!()
    gc!()
    const after = heapSize()
    assert.equal(cache.size, entryCount) // Also keeps the cache alive until after the reading.
    return (after - before) / entryCount
  }
  return median([attempt(), attempt(), attempt()])
}

function measureMemory(): MemoryResult {
  const layout = Store.create({ limits }).layout
  const round1 = (size: number) => Math.round(size * 10) / 10
  return {
    payloadSize: keySize + valueSize,
    slabkvStructureSize: round1(
      (layout.byteLength - layout.walRingSize - limits.memorySizeMax) / entryCount,
    ),
    slabkvTotalSize: round1((layout.byteLength - layout.walRingSize) / entryCount),
    lruCacheHeapGrowthSize: round1(heapGrowthPerEntry(fillCache)),
    lruCacheHeapGrowthWithPayloadSize: round1(
      heapGrowthPerEntry((cache) => {
        for (let n = 0; n < entryCount; n++) {
          cache.set(keyOf(keySpaceSize + n), new Uint8Array(valueSize).fill(n))
        }
      }),
    ),
  }
}

const grouped = (n: number) => Math.round(n).toLocaleString('en-US')

function resultTable(results: ScenarioResult[]): string {
  return renderTable([
    ['scenario', 'slabkv ops/s', 'lru-cache ops/s', 'ratio', 'ratio of a run, min–max'],
    ...results.map((r) => [
      r.scenario,
      grouped(r.slabkvOpsPerSecond),
      grouped(r.lruCacheOpsPerSecond),
      `${r.ratio.toFixed(2)}×`,
      `${r.ratioRunRange[0].toFixed(2)}–${r.ratioRunRange[1].toFixed(2)}`,
    ]),
  ])
}

function renderMemory(memory: MemoryResult): string {
  return [
    `Bytes per entry, beside the ${memory.payloadSize} bytes of key and value each entry holds:\n`,
    `- slabkv: ${memory.slabkvStructureSize} bytes of structure ((layout.byteLength - walRingSize - memorySizeMax) / entryCountMax), ` +
      `${memory.slabkvTotalSize} in all (byteLength / entryCountMax), allocated up front.`,
    `- lru-cache: ${memory.lruCacheHeapGrowthSize} bytes of heap growth with the caller's keys and values, ` +
      `${memory.lruCacheHeapGrowthWithPayloadSize} with keys and values made for it (V8 heapUsed + arrayBuffers).`,
  ].join('\n')
}

// Others edit src/ between commits; a figure measured on uncommitted code says so.
const context = runContext(import.meta.url, ['src'])
const selected = scenarios.filter(
  (s) => args.scenario === undefined || s.name.startsWith(args.scenario),
)
assert(selected.length > 0, `no scenario starts with ${args.scenario}`)
const benchStart = process.hrtime.bigint()
const memory = measureMemory()
const results: ScenarioResult[] = []
for (const keyMode of ['reused', 'fresh'] as const) {
  freshKeys = keyMode === 'fresh'
  for (const scenario of selected) {
    const name = `${scenario.name}, ${keyMode} keys`
    process.stderr.write(`${name}: ${runCount} runs of ${grouped(scenario.count)} ops…\n`)
    results.push(runScenario({ ...scenario, name }))
  }
}
const durationS = Math.round(Number(process.hrtime.bigint() - benchStart) / 1e8) / 10

const table = resultTable(results)
const note =
  `Figures are medians of ${runCount} runs per system, the systems interleaved; ` +
  `${grouped(opCount)} ops per run (delete: ${deleteRoundCount} × ${grouped(entryCount)}). ` +
  `${grouped(entryCount)} entries of ${keySize}-byte keys and ${valueSize}-byte values. ` +
  'Reused keys: the same string objects every time (V8 caches their hash, so a Map never ' +
  'hashes). Fresh keys: each operation slices its key out of a request path, as a server does.'

console.log(`${table}\n\n${note}\n\n${renderMemory(memory)}\n\nsink ${sink}, ${durationS} s`)

if (!dryRun) {
  const json = {
    config: {
      limits,
      lruCacheOptions,
      entryCount,
      keySize,
      valueSize,
      keySpaceSize,
      runCount,
      opCountPerRun: opCount,
      deleteRoundCount,
      seed,
    },
    results,
    memory,
    durationS,
  }
  writeResults('store', context, json, `${table}\n\n${note}\n\n${renderMemory(memory)}`)
}
