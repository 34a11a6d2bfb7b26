import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Store } from '../src/store/store.js'
import { createRandom, median } from './measure.js'
import { git, publish, renderTable, root, runContext } from './report.js'

// npm run bench:lock-cost — what the store lock's counters (src/store/lock-stats.ts) cost an
// operation, in process, one thread, no HTTP and no log: the store of a baseline commit without
// them (built from `git archive` into a temporary directory) against this build, with the
// counters as they ship (one hold in 16 timed) and with every hold timed. The three take turns
// in every round and the figure is the median of the rounds, as in bench:store. Each run is a
// process of its own (this script with --child), so no system's code shares the optimizer's
// feedback with another's: one process running two Store classes through one loop would time
// a polymorphic loop, not either store.

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string', default: 'main' },
    runs: { type: 'string', default: '9' },
    ops: { type: 'string', default: '500000' },
    'dry-run': { type: 'boolean', default: false },
    // Internal: one timed run in this process, of system --child, scenario --scenario.
    child: { type: 'string' },
    scenario: { type: 'string' },
    'baseline-dir': { type: 'string' },
  },
})
const runCount = Number(args.runs)
const opCount = Number(args.ops)
const gc = globalThis.gc
assert(gc, 'run node with --expose-gc')

/** The baseline's tree, compiled, from a copy of it and this checkout's node_modules. */
function buildBaseline(commit: string): string {
  const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-baseline-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  execFileSync('sh', ['-c', `git archive ${commit} | tar -x -C "${dir}"`], { cwd: root })
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-b', 'tsconfig.json'], { cwd: dir })
  return dir
}

const entryCount = 100_000
const keys = Array.from({ length: entryCount }, (_, n) => `key:${String(n).padStart(12, '0')}`)
const value = new Uint8Array(100).fill(7)
const limits = { entryCountMax: entryCount, memorySizeMax: entryCount * 128 }

const systemLabels = ['baseline', 'counters (1 in 16 timed)', 'counters, every hold timed']

async function makeStore(system: number): Promise<Store> {
  if (system === 0) {
    const path = join(args['baseline-dir']!, 'dist', 'src', 'store', 'store.js')
    const module = (await import(path)) as { Store: typeof Store }
    return module.Store.create({ limits })
  }
  return Store.create({ limits, lockMeter: { timingEvery: system === 1 ? 16 : 1 } })
}

/** Each scenario's loop over a full store: returns a checksum of what it did. */
const scenarios: { title: string; run: (store: Store, order: Int32Array) => number }[] = [
  {
    title: 'get (hit)',
    run(store, order) {
      let total = 0
      for (let i = 0; i < opCount; i++) total += store.get(keys[order[i]!]!)!.value.byteLength
      return total
    },
  },
  {
    title: 'set (replace)',
    run(store, order) {
      let total = 0
      for (let i = 0; i < opCount; i++) total += store.set(keys[order[i]!]!, value).ok ? 1 : 0
      return total
    },
  },
  {
    title: '90% get / 10% set',
    run(store, order) {
      let total = 0
      for (let i = 0; i < opCount; i++) {
        const key = keys[order[i]!]!
        total += i % 10 === 9 ? (store.set(key, value).ok ? 1 : 0) : store.get(key)!.value.length
      }
      return total
    },
  },
]

const random = createRandom(0x5eed)
const order = Int32Array.from({ length: opCount }, () => Math.floor(random() * entryCount))

if (args.child !== undefined) {
  // One run: fill, warm up with one discarded pass, time one pass; print CPU ns per operation.
  const scenario = scenarios[Number(args.scenario)]!
  const store = await makeStore(Number(args.child))
  for (const key of keys) store.set(key, value)
  scenario.run(store, order)
  gc()
  // CPU time, not wall time: on a shared machine, time spent preempted is not the store's.
  const before = process.cpuUsage()
  const total = scenario.run(store, order)
  const cpu = process.cpuUsage(before)
  assert(total > 0)
  console.log(((cpu.user + cpu.system) * 1000) / opCount)
  process.exit(0)
}

const context = runContext(import.meta.url, ['src'])
const baselineCommit = git('rev-parse', '--short', args.baseline!)
const baselineDir = buildBaseline(baselineCommit)
const labels = systemLabels.map((label, i) => (i === 0 ? `${label} ${baselineCommit}` : label))
const rows = [['operation', ...labels.map((label) => `${label}, ns/op`), 'counters ÷ baseline']]
const json: Record<string, Record<string, number>> = {}
const loads: number[] = []
for (const [index, scenario] of scenarios.entries()) {
  const times: number[][] = systemLabels.map(() => [])
  for (let round = 0; round < runCount; round++) {
    // A B C, then C B A: each system runs first as often as last.
    const turn = round % 2 === 0 ? [0, 1, 2] : [2, 1, 0]
    for (const system of turn) {
      const childArgs = [...process.execArgv, process.argv[1]!, '--child', String(system)]
      childArgs.push('--scenario', String(index), '--ops', String(opCount))
      childArgs.push('--baseline-dir', baselineDir)
      const out = execFileSync(process.execPath, childArgs, { encoding: 'utf8' })
      times[system]!.push(Number(out.trim()))
    }
    loads.push(os.loadavg()[0]!)
  }
  const medians = times.map(median)
  json[scenario.title] = Object.fromEntries(labels.map((label, i) => [label, medians[i]!]))
  const ratio = (i: number) => `${(medians[i]! / medians[0]!).toFixed(3)}×`
  rows.push([
    scenario.title,
    ...medians.map((ns) => ns.toFixed(0)),
    `${ratio(1)} (every hold timed: ${ratio(2)})`,
  ])
  console.error(`${scenario.title}: ${medians.map((ns) => ns.toFixed(0)).join(' / ')} ns`)
}

const markdown = `${renderTable(rows)}

CPU time per operation (the process's, so time spent preempted by the machine's other users is not counted); medians of ${runCount} interleaved runs, each a process of its own timing ${opCount.toLocaleString('en')} operations (after as many discarded) on a full store of ${entryCount.toLocaleString('en')} entries (16-byte keys, 100-byte values), one thread, no log; load average ${median(loads).toFixed(2)} (median over the rounds; the machine's other users). "counters ÷ baseline" is this build's store with the lock's counters as they ship over the store of ${baselineCommit}, which has none.`
publish('lock-cost', context, args['dry-run']!, { baseline: baselineCommit, ns: json }, markdown)
