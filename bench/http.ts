import assert from 'node:assert/strict'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { pipelining, runAutocannon } from './autocannon.js'
import { dialects } from './dialects.js'
import {
  batchOpCount,
  batchSetCount,
  getHitName,
  keyCount,
  keyspace,
  mixSetPerMille,
  type Scenario,
  scenarios,
  seed,
  valueSize,
} from './http/scenarios.js'
import {
  assertAllRight,
  createRandom,
  loadOptions,
  loadSettings,
  type Measurement,
  measureLoad,
  medianFigures,
} from './measure.js'
import { preload } from './preload.js'
import { publish, renderTable, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { withWorkDir } from './servers.js'
import { type FsyncMode, honoMapSystem, slabkvSystem, startSystems } from './systems.js'

// The HTTP benchmark: the real `slabkv serve` as a child process, beside a reference server
// (bench/peers/hono-map.ts: Hono, @hono/node-server and a plain Map, nothing else), both run by
// the node binary running this file (bench/systems.ts), both loaded by autocannon from this
// process (bench/autocannon.ts).
//
// Each system is preloaded with the same keys (bench/preload.ts), then every scenario sends
// identical requests to both: autocannon's setupRequest draws keys from a seeded generator,
// restarted per measurement, so both systems see the same sequence. Rounds interleave the
// systems after a warm-up of each (bench/rounds.ts), and the figures reported are medians.
//
// A response whose status the scenario does not expect (anything but 2xx, or the 404 a miss
// must get) fails the benchmark: an error answered fast must never count as throughput.
//
// The load generator shares the machine with the servers: on 2 cores autocannon's own thread
// takes most of one, so each measurement records the CPU this process used (process.cpuUsage)
// and the CPU the server used (/proc/<pid>/stat), as a share of one core. A server near 100%
// is the bottleneck; a load generator near 100% means the figure is the generator's limit.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(1),
    // Handler threads of the second slabkv, run where Node can share a port (>= 22.12).
    threads: { type: 'string', default: '2' },
    // Runs only the scenarios whose name starts with this.
    scenario: { type: 'string' },
    // slabkv's --fsync mode: always (the default) acknowledges after fdatasync.
    fsync: { type: 'string', default: 'always' },
    // Adds slabkv with --miss-ratio-curve off to every scenario: what the curve costs, A/B.
    'curve-ab': { type: 'boolean', default: false },
  },
})
const { runCount, durationS, warmupS, connectionCount, dryRun } = loadSettings(args)
const threadCount = Number(args.threads)
assert(Number.isSafeInteger(threadCount) && threadCount >= 2, '--threads must be ≥ 2')

const fsyncMode = args.fsync as FsyncMode
assert(['always', 'everysec', 'no'].includes(fsyncMode), '--fsync must be always, everysec or no')
const limitArgs = ['--max-entries', '100000', '--max-memory', '64MiB']
const serverArgs = [...limitArgs, '--fsync', fsyncMode]

const selected = scenarios.filter(
  (s) => args.scenario === undefined || s.title.startsWith(args.scenario),
)
assert(selected.length > 0, `no scenario starts with ${args.scenario}`)
// A figure measured on uncommitted server code says so.
const context = runContext(import.meta.url, ['src', 'workers'])

const slabkvName = 'slabkv'
const referenceName = 'hono-map'
const threadedName = `slabkv --threads ${threadCount}`
const curveOffName = 'slabkv --miss-ratio-curve off'
const curveAb = args['curve-ab']
const specs = [
  // --threads 1 makes it one handler thread, where the default is one per core.
  slabkvSystem({
    threads: 1,
    fsync: fsyncMode,
    // With --curve-ab this one has the curve on; the one added below has it off.
    serveArgs: curveAb ? [...limitArgs, '--miss-ratio-curve', 'on'] : limitArgs,
    id: 'slabkv',
    label: slabkvName,
  }),
  honoMapSystem(referenceName),
  slabkvSystem({
    threads: threadCount,
    fsync: fsyncMode,
    serveArgs: limitArgs,
    id: 'slabkv-threads',
    label: threadedName,
  }),
  // Last, so that the threaded server stays the third (its note below reads systems[2]).
  ...(curveAb
    ? [
        slabkvSystem({
          threads: 1,
          fsync: fsyncMode,
          serveArgs: [...limitArgs, '--miss-ratio-curve', 'off'],
          id: 'slabkv-curve-off',
          label: curveOffName,
        }),
      ]
    : []),
]

interface SystemResult {
  system: string
  requestsPerSecond: number
  opsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  loadGeneratorCpuPercent: number
  serverCpuPercent: number | null
  serverCpuPerRequestUs: number | null
  runs: Measurement[]
}

function summarize(system: string, scenario: Scenario, runs: Measurement[]): SystemResult {
  const figures = medianFigures(runs)
  const roundOrNull = (n: number | null) => (n === null ? null : Math.round(n))
  const requestsPerSecond = Math.round(figures.requestsPerSecond)
  return {
    system,
    requestsPerSecond,
    opsPerSecond: requestsPerSecond * scenario.opsPerRequest,
    latencyP50Ms: figures.latencyP50Ms,
    latencyP99Ms: figures.latencyP99Ms,
    loadGeneratorCpuPercent: Math.round(figures.generatorCpuPercent),
    serverCpuPercent: roundOrNull(figures.serverCpuPercent),
    serverCpuPerRequestUs: roundOrNull(figures.serverCpuPerRequestUs),
    runs,
  }
}

const benchStart = process.hrtime.bigint()
const { systems, results } = await withWorkDir('http', async (workDir) => {
  const systems = await startSystems(specs, workDir)
  for (const system of systems) {
    await preload(system.url, dialects.slabkv, keyspace)
    for (const scenario of selected) await scenario.check(system.url)
  }
  const rounds = await runRounds({
    scenarios: selected,
    // Only GET hit is measured with the threaded server, which answers the threads question.
    systemsIn: (scenario) =>
      systems.filter((s) => s.spec.label !== threadedName || scenario.title === getHitName),
    runCount,
    warmupS,
    durationS,
    async measure(system, scenario, seconds) {
      const run = await measureLoad(system.pids, () =>
        runAutocannon({
          url: system.url,
          connectionCount,
          seconds,
          request: scenario.request(createRandom(seed)),
          ok: (status) => scenario.statuses.includes(status),
        }),
      )
      assertAllRight(run, `${scenario.title} on ${system.spec.label}`)
      return run
    },
  })
  const results = selected.map((scenario) => ({
    scenario: scenario.title,
    opsPerRequest: scenario.opsPerRequest,
    systems: [...rounds.get(scenario)!].map(([system, runs]) =>
      summarize(system.spec.label, scenario, runs),
    ),
  }))
  return { systems, results }
})
const benchDurationS = Math.round(Number(process.hrtime.bigint() - benchStart) / 1e8) / 10
const grouped = (n: number) => Math.round(n).toLocaleString('en-US')
const round3 = (n: number) => Math.round(n * 1000) / 1000
const systemOf = (scenario: (typeof results)[number], name: string) =>
  scenario.systems.find((s) => s.system === name)
const ratioRows = results.map((r) => {
  const slabkv = systemOf(r, slabkvName)!
  const reference = systemOf(r, referenceName)!
  const runRatios = slabkv.runs.map(
    (run, i) => run.requestsPerSecond / reference.runs[i]!.requestsPerSecond,
  )
  return {
    scenario: r.scenario,
    ratio: round3(slabkv.requestsPerSecond / reference.requestsPerSecond),
    ratioRunRange: [round3(Math.min(...runRatios)), round3(Math.max(...runRatios))],
    slabkv,
    reference,
  }
})
const perSecond = (s: SystemResult, opsPerRequest: number) =>
  opsPerRequest === 1
    ? grouped(s.requestsPerSecond)
    : `${grouped(s.requestsPerSecond)} (${grouped(s.opsPerSecond)} ops/s)`
const latency = (s: SystemResult) => `${s.latencyP50Ms.toFixed(2)} / ${s.latencyP99Ms.toFixed(2)}`
const cpu = (s: SystemResult) => `${s.serverCpuPercent ?? '?'}% / ${s.loadGeneratorCpuPercent}%`
const table = renderTable([
  [
    'scenario',
    'slabkv req/s',
    'hono-map req/s',
    'ratio',
    'ratio of a run, min–max',
    'slabkv p50 / p99 ms',
    'hono-map p50 / p99 ms',
    'server CPU µs/req, slabkv / hono-map',
    'CPU % slabkv / its load gen',
    'CPU % hono-map / its load gen',
  ],
  ...ratioRows.map((r, i) => [
    r.scenario,
    perSecond(r.slabkv, results[i]!.opsPerRequest),
    perSecond(r.reference, results[i]!.opsPerRequest),
    `${r.ratio.toFixed(2)}×`,
    `${r.ratioRunRange[0]!.toFixed(2)}–${r.ratioRunRange[1]!.toFixed(2)}`,
    latency(r.slabkv),
    latency(r.reference),
    `${r.slabkv.serverCpuPerRequestUs ?? '?'} / ${r.reference.serverCpuPerRequestUs ?? '?'}`,
    cpu(r.slabkv),
    cpu(r.reference),
  ]),
])

const getHit = results.find((r) => r.scenario === getHitName)
const getHitThreaded = getHit === undefined ? undefined : systemOf(getHit, threadedName)
const getHitSingle = getHit === undefined ? undefined : systemOf(getHit, slabkvName)
const threadedRatio =
  getHitThreaded === undefined || getHitSingle === undefined
    ? undefined
    : round3(getHitThreaded.requestsPerSecond / getHitSingle.requestsPerSecond)
const threadedNote =
  getHitThreaded === undefined || getHitSingle === undefined
    ? `The ${threadedName} run measures GET hit only, which was not selected.`
    : `GET hit with ${threadedName} (` +
      `${systems[2]?.listening.threads} threads): ${grouped(getHitThreaded.requestsPerSecond)} req/s, ` +
      `p50 / p99 ${latency(getHitThreaded)} ms, ${getHitThreaded.serverCpuPerRequestUs ?? '?'} µs of server CPU per request, CPU % server / load gen ${cpu(getHitThreaded)}: ` +
      `**${threadedRatio!.toFixed(2)}×** single-thread (target ≥ 1.3×), ` +
      `${(getHitThreaded.requestsPerSecond / systemOf(getHit!, referenceName)!.requestsPerSecond).toFixed(2)}× hono-map.`
const batch = ratioRows.find((r) => r.scenario.startsWith('POST /v1/batch'))
const targets = [
  ...ratioRows
    .filter((r) => r.scenario === getHitName)
    .map((r) => `- GET hit, single thread: ${r.ratio.toFixed(2)}× hono-map (target ≥ 0.9×)`),
  ...(threadedRatio === undefined
    ? []
    : [
        `- GET hit, ${threadCount} handler threads: ${threadedRatio.toFixed(2)}× single-thread (target ≥ 1.3×)`,
      ]),
  ...(batch === undefined
    ? []
    : [`- /v1/batch: ${grouped(batch.slabkv.opsPerSecond)} ops/s (target ≥ 300,000)`]),
].join('\n')
const note =
  `Medians of ${runCount} runs per system, the systems interleaved, each run ${durationS} s, ` +
  `after a ${warmupS} s warm-up of each system in each scenario; autocannon in this process, ${connectionCount} connections, ` +
  `pipelining ${pipelining}. Both servers preloaded with ${grouped(keyCount)} keys of ` +
  `${valueSize}-byte values; keys drawn at random per request, the same sequence for both. ` +
  `slabkv: \`slabkv serve ${serverArgs.join(' ')} --threads 1\`, 1 handler thread. ` +
  `hono-map: bench/peers/hono-map.ts (Hono, @hono/node-server, a Map). Latency from every ` +
  `response's time as autocannon measures it. CPU %: share of one core used by the server (all its ` +
  `threads), and by this process (the load generator), during the run; the machine's ` +
  `${os.cpus().length} cores are shared by both. µs/req: server CPU time per response.`

// The curve's cost: slabkv as above with the curve on against the same server with it off, in
// the same interleaved rounds. 10,000 keys would fit the curve's sample of 8,192 nearly whole;
// under this load its budget (10,000 sampled accesses a second) decides how many are sampled.
const curveRows = curveAb
  ? results.map((r) => {
      const on = systemOf(r, slabkvName)!
      const off = systemOf(r, curveOffName)!
      const runRatios = on.runs.map(
        (run, i) => run.requestsPerSecond / off.runs[i]!.requestsPerSecond,
      )
      return {
        scenario: r.scenario,
        ratio: round3(on.requestsPerSecond / off.requestsPerSecond),
        ratioRunRange: [round3(Math.min(...runRatios)), round3(Math.max(...runRatios))],
        on,
        off,
      }
    })
  : []
const curveTable = curveAb
  ? `${renderTable([
      [
        'scenario',
        'curve on req/s',
        'curve off req/s',
        'on / off (target ≥ 0.97×)',
        'on / off of a run, min–max',
        'server CPU µs/req, on / off',
        'CPU % on / its load gen',
      ],
      ...curveRows.map((r, i) => [
        r.scenario,
        perSecond(r.on, results[i]!.opsPerRequest),
        perSecond(r.off, results[i]!.opsPerRequest),
        `${r.ratio.toFixed(2)}×`,
        `${r.ratioRunRange[0]!.toFixed(2)}–${r.ratioRunRange[1]!.toFixed(2)}`,
        `${r.on.serverCpuPerRequestUs ?? '?'} / ${r.off.serverCpuPerRequestUs ?? '?'}`,
        cpu(r.on),
      ]),
    ])}\n\nThe miss-ratio curve's cost (\`--curve-ab\`): slabkv above with \`--miss-ratio-curve on\` against \`${curveOffName}\`, same options otherwise, in the same rounds. The 10,000 keys would nearly fit the curve's 8,192-key sample; under load its budget of 10,000 sampled accesses a second lowers the rate (to no fewer than 4,096 keys).\n\n`
  : ''

const markdown = `${table}\n\n${threadedNote}\n\n${curveTable}${targets}\n\n${note}`
const config = {
  runCount,
  durationS,
  warmupS,
  connectionCount,
  pipelining,
  keyCount,
  valueSize,
  batchOpCount,
  batchSetCount,
  mixSetPerMille,
  serverArgs,
  threadCount,
  seed,
}
const json = {
  config,
  servers: systems.map((s) => ({ name: s.spec.label, listening: s.listening })),
  results: ratioRows.map((r, i) => ({
    scenario: r.scenario,
    opsPerRequest: results[i]!.opsPerRequest,
    ratio: r.ratio,
    ratioRunRange: r.ratioRunRange,
    systems: results[i]!.systems,
  })),
  threadedGetHitRatio: threadedRatio ?? null,
  curveOnOff: curveAb
    ? curveRows.map((r) => ({
        scenario: r.scenario,
        ratio: r.ratio,
        ratioRunRange: r.ratioRunRange,
      }))
    : null,
  durationS: benchDurationS,
}
publish('http', context, dryRun, json, markdown)
process.stderr.write(`${benchDurationS} s\n`)
