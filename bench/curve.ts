import assert from 'node:assert/strict'
import { parseArgs } from 'node:util'
import { CurveCollector } from '../src/mrc/collector.js'
import { I32, storeLimitsDefault } from '../src/store/layout.js'
import { Store } from '../src/store/store.js'
import { createRandom, median } from './measure.js'
import { renderTable, runContext, writeResults } from './report.js'

// What the miss-ratio curve costs per operation, in one process: the same store operations with
// the curve on and off, interleaved runs, medians. "On" pays for all of the curve's work, on
// this one thread: the sampling each operation does under the store lock (the hash, the ring
// record) and the main thread's draining of the ring into the estimator (every 2,000
// operations here, every 100 ms in the server). On 2 cores that main-thread work competes with
// the handler threads, so it is charged to the operations.
//
// Two key sets: 10,000 keys nearly fit the sample of 8,192, so nearly every operation is
// sampled (the most the curve can cost); 1,000,000 keys are sampled at about 0.8%. The figure
// that matters is the difference in nanoseconds per operation set beside a request's server
// CPU (bench:http: 40 to 100 µs): the curve's share of a request.

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '9' },
    ops: { type: 'string', default: '1000000' },
    'dry-run': { type: 'boolean', default: false },
  },
})
const runCount = Number(args.runs)
const opCount = Number(args.ops)
assert(Number.isSafeInteger(runCount) && runCount >= 1, '--runs must be a positive integer')
assert(Number.isSafeInteger(opCount) && opCount >= 1, '--ops must be a positive integer')
const gc = globalThis.gc
assert(gc, 'run node with --expose-gc')

const drainEvery = 2000
const valueSize = 100
const value = new Uint8Array(valueSize).fill(7)
const random = createRandom(0xc0ffee)
let sink = 0

interface Setup {
  store: Store
  collector: CurveCollector | undefined
}

function setUp(keys: string[], curve: boolean): Setup {
  const store = Store.create({
    limits: {
      ...storeLimitsDefault,
      entryCountMax: keys.length,
      // Room for three quarters of the keys, so that sets evict and gets miss now and then.
      memorySizeMax: Math.round(keys.length * 0.75 * (keys[0]!.length + valueSize)),
    },
  })
  const collector = curve ? new CurveCollector(store.views) : undefined
  for (const key of keys) assert(store.set(key, value).ok)
  collector?.drain()
  return { store, collector }
}

type Operation = 'get' | 'set'

function timedRun(setup: Setup, keys: string[], picks: Uint32Array, operation: Operation) {
  const { store, collector } = setup
  gc!()
  const ringHead = store.views.headerI32[I32.accessRingHead]!
  const start = process.hrtime.bigint()
  let total = 0
  for (let i = 0; i < opCount; i++) {
    const key = keys[picks[i & (picks.length - 1)]!]!
    if (operation === 'get') total += store.get(key) === undefined ? 0 : 1
    else total += store.set(key, value).ok ? 1 : 0
    if (collector !== undefined && i % drainEvery === drainEvery - 1) collector.drain()
  }
  collector?.drain()
  const ns = Number(process.hrtime.bigint() - start) / opCount
  sink += total
  const sampled = (store.views.headerI32[I32.accessRingHead]! - ringHead) | 0
  return { ns, sampledShare: sampled / opCount }
}

interface Row {
  keyCount: number
  operation: Operation
  offNsPerOp: number
  onNsPerOp: number
  costNsPerOp: number
  /** Of the operations with the curve on, the share sampled (after the first run's budget). */
  sampledShare: number
  /** costNsPerOp / sampledShare: what each sampled access costs, all in. */
  costNsPerSampledAccess: number
  ratio: number
  sampledKeyCount: number
}

const rows: Row[] = []
for (const keyCount of [10_000, 1_000_000]) {
  const keys = Array.from({ length: keyCount }, (_, n) => `key:${String(n).padStart(12, '0')}`)
  // Zipf-like picks (a cube of a uniform draw): hot keys and a long tail.
  const picks = Uint32Array.from({ length: 2 ** 20 }, () => Math.floor(random() ** 3 * keyCount))
  for (const operation of ['get', 'set'] as const) {
    const off = setUp(keys, false)
    const on = setUp(keys, true)
    const ns = { off: [] as number[], on: [] as number[] }
    const shares: number[] = []
    for (let run = -1; run < runCount; run++) {
      const order = run % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)
      for (const which of order) {
        const { ns: elapsed, sampledShare } = timedRun(
          which === 'on' ? on : off,
          keys,
          picks,
          operation,
        )
        if (run < 0) continue
        ns[which].push(elapsed)
        if (which === 'on') shares.push(sampledShare)
      }
    }
    const offNs = median(ns.off)
    const onNs = median(ns.on)
    const sampledShare = median(shares)
    rows.push({
      keyCount,
      operation,
      offNsPerOp: Math.round(offNs),
      onNsPerOp: Math.round(onNs),
      costNsPerOp: Math.round(onNs - offNs),
      sampledShare: Math.round(sampledShare * 10000) / 10000,
      costNsPerSampledAccess: Math.round((onNs - offNs) / sampledShare),
      ratio: Math.round((offNs / onNs) * 1000) / 1000,
      sampledKeyCount: on.collector!.curve().sampledKeyCount,
    })
    on.collector!.stop()
  }
}

const table = renderTable([
  [
    'keys',
    'operation',
    'off ns/op',
    'on ns/op',
    'curve ns/op',
    'sampled',
    'ns per sampled access',
    'ops/s on ÷ off',
    'sampled keys',
  ],
  ...rows.map((r) => [
    r.keyCount.toLocaleString('en-US'),
    r.operation,
    String(r.offNsPerOp),
    String(r.onNsPerOp),
    String(r.costNsPerOp),
    `${(r.sampledShare * 100).toFixed(1)}%`,
    String(r.costNsPerSampledAccess),
    r.ratio.toFixed(3),
    r.sampledKeyCount.toLocaleString('en-US'),
  ]),
])
const note = `In one process, ${runCount} interleaved runs of ${opCount.toLocaleString('en-US')} operations each, medians; "on" includes draining the ring into the estimator every ${drainEvery} operations. In a server the collector's budget caps sampled accesses at 10,000 a second, so the curve's CPU is at most 10,000 × "ns per sampled access" a second, whatever the request rate; here, millions of operations a second, the budget holds the sample at its floor of 4,096 keys.`
console.log(`${table}\n\n${note}\n(sink ${sink})`)
if (!args['dry-run']) {
  writeResults(
    'curve',
    runContext(import.meta.url, ['src']),
    { runCount, opCount, rows },
    `${table}\n\n${note}`,
  )
}
