import assert from 'node:assert/strict'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { dialects } from './dialects.js'
import { loadOptions, loadSettings } from './measure.js'
import { preload } from './preload.js'
import { filesystemOf, publish, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { requirePrograms, withWorkDir } from './servers.js'
import { type RunningSystem, slabkvSystem, startSystems } from './systems.js'
import { WatcherProcesses } from './watch/clients.js'
import {
  counters,
  type DrainRun,
  type LatencyRun,
  measureDrain,
  measureLatency,
  measureWrites,
  putMarker,
  type WritesPlan,
  type WritesRun,
} from './watch/measure.js'
import { profiled } from './watch/profile.js'
import { drainReport, latencyReport, writesReport } from './watch/report.js'
import { prepareLua, writeScript } from './wrk.js'

// npm run bench:watch — what the change feed (GET /v1/watch) costs and delivers, in one run:
//
// 1. Writes: PUT busy:<n> (100 B, a random key of 10,000) from wrk, against one slabkv per case
//    (2 handler threads, --fsync always), with 0, 1, 10 and 100 watchers of prefix busy:. The
//    watchers run in a process of their own (bench/watch/client.ts), read and parse every
//    stream, and must each hold every change the server made, in order (bench/watch/measure.ts):
//    they compete with the server and wrk for the machine's cores, as real consumers would.
// 2. Latency: a paced writer and a few watchers in one process, one clock: from a write's
//    acknowledgement to its event at each watcher.
// 3. History: one watcher from before --history preloaded writes, reading them back.
//
// Every case is a system of one interleaved round (bench/rounds.ts): writes with 0, 1, 10, 100
// watchers, latency, history, then again; the figures are medians. --quick is a smoke run.
// --profile <watchers>[,<watchers>…] then runs the writes case with that many watchers once
// more, its server under node --cpu-prof, and reports where the server's time goes
// (bench/cpuprofile.ts): --profile 0,100 shows what 100 watchers add.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    quick: { type: 'boolean', default: false },
    watchers: { type: 'string', default: '0,1,10,100' },
    'watcher-processes': { type: 'string', default: '1' },
    history: { type: 'string', default: '200000' },
    'latency-rate': { type: 'string', default: '1000' },
    'latency-watchers': { type: 'string', default: '4' },
    'catch-up-timeout': { type: 'string', default: '30' },
    'serve-args': { type: 'string', default: '' },
    profile: { type: 'string' },
  },
})
const quick = args.quick
const settings = loadSettings(quick ? { ...args, runs: '1', duration: '2', warmup: '1' } : args)
const { runCount, durationS, warmupS, connectionCount, dryRun } = settings
const watcherCounts = args.watchers.split(',').map(Number)
const processCount = Number(args['watcher-processes'])
const history = quick ? 20_000 : Number(args.history)
const latencyRate = Number(args['latency-rate'])
const latencyWatchers = Number(args['latency-watchers'])
const catchUpTimeoutMs = Number(args['catch-up-timeout']) * 1000
/** --profile 0,100: a profile of each case named, one after the other. */
const profileWatchers = (args.profile ?? '')
  .split(',')
  .filter((n) => n !== '')
  .map(Number)
/** More `slabkv serve` options for every server, space-separated. */
const serveArgs = args['serve-args'].split(' ').filter((a) => a !== '')
for (const n of [
  ...watcherCounts,
  ...profileWatchers,
  processCount,
  history,
  latencyRate,
  latencyWatchers,
])
  assert(Number.isSafeInteger(n) && n >= 0, 'counts and rates must be integers ≥ 0')
assert(processCount >= 1 && latencyWatchers >= 1 && latencyRate >= 1 && history >= 1)

requirePrograms(['wrk'])
const context = runContext(import.meta.url, ['src', 'workers'])
const keyCount = 10_000
const valueSize = 100
const threads = 2
const limits = ['--max-entries', '100000', '--max-memory', '64MiB']

const writesLua = prepareLua(`local body = valueText(0, ${valueSize})
function nextRequest()
  return setRequest(string.format("busy:%012d", math.random(keyCount) - 1), body)
end
ok = setOk
`)

const watchersLabel = (n: number) => `${n} watcher${n === 1 ? '' : 's'}`

function server(id: string, label: string, more: string[]) {
  return slabkvSystem({ threads, fsync: 'always', serveArgs: [...more, ...serveArgs], id, label })
}

type Case =
  | { kind: 'writes'; watcherCount: number }
  | { kind: 'latency' }
  | { kind: 'history'; since: number; to: number; expected: number }
type AnyRun = WritesRun | LatencyRun | DrainRun

async function prepareHistory(system: RunningSystem): Promise<Case> {
  const since = await putMarker(system.url, 'history-marker:start')
  const before = await counters(system.url)
  await preload(system.url, dialects.slabkv, { keyCount: history, valueSize })
  const to = await putMarker(system.url, 'key:end')
  const expected = (await counters(system.url)).changes - before.changes
  return { kind: 'history', since, to, expected }
}

const loadBefore = os.loadavg()[0]!
const log = (line: string) => process.stderr.write(`${line}\n`)

const result = await withWorkDir('watch', async (workDir) => {
  const filesystem = filesystemOf(workDir)
  const watchers = new WatcherProcesses(processCount)
  try {
    const specs = [
      ...watcherCounts.map((n) => server(`watchers-${n}`, watchersLabel(n), limits)),
      server('latency', 'latency', limits),
      server('history', 'history', [
        '--max-entries',
        String(history * 2),
        '--max-memory',
        '256MiB',
      ]),
    ]
    const systems = await startSystems(specs, workDir)
    const cases = new Map<RunningSystem, Case>()
    for (const [i, watcherCount] of watcherCounts.entries())
      cases.set(systems[i]!, { kind: 'writes', watcherCount })
    cases.set(systems[watcherCounts.length]!, { kind: 'latency' })
    const historySystem = systems[watcherCounts.length + 1]!
    log(`preloading ${history.toLocaleString('en-US')} writes into the history server`)
    cases.set(historySystem, await prepareHistory(historySystem))
    const plan: WritesPlan = {
      watchers,
      script: writeScript(workDir, 'watch-writes', keyCount, dialects.slabkv, writesLua),
      connectionCount,
      catchUpTimeoutMs,
    }
    const measure = (system: RunningSystem, seconds: number): Promise<AnyRun> => {
      const c = cases.get(system)!
      if (c.kind === 'writes') return measureWrites(system, c.watcherCount, seconds, plan)
      if (c.kind === 'latency')
        return measureLatency(system, seconds, {
          watchers,
          watcherCount: latencyWatchers,
          rate: latencyRate,
        })
      return measureDrain(system, { watchers, ...c, timeoutMs: catchUpTimeoutMs * 4 })
    }
    const scenario = { title: 'watch' }
    const rounds = await runRounds<typeof scenario, AnyRun>({
      scenarios: [scenario],
      systemsIn: () => systems,
      runCount,
      warmupS,
      durationS,
      measure: (system, _scenario, seconds) => measure(system, seconds),
      note: (run) => describe(run),
    })
    const runsOf = <R extends AnyRun>(system: RunningSystem) =>
      rounds.get(scenario)!.get(system)! as R[]
    const writes = writesReport(
      watcherCounts.map((watcherCount, i) => ({
        watcherCount,
        runs: runsOf<WritesRun>(systems[i]!),
      })),
      runCount >= 3,
    )
    const latency = latencyReport(
      runsOf<LatencyRun>(systems[watcherCounts.length]!),
      latencyRate,
      latencyWatchers,
    )
    const drain = drainReport(runsOf<DrainRun>(historySystem))
    const profiles: string[] = []
    for (const n of profileWatchers) {
      const spec = server(`profiled-${n}`, `${watchersLabel(n)}, profiled`, limits)
      profiles.push(await profiled(spec, workDir, n, plan, { warmupS, durationS }))
    }
    const profile = profiles.join('\n\n')
    return { writes, latency, drain, profile, filesystem }
  } finally {
    await watchers.stop()
  }
})

function describe(run: AnyRun): string {
  const problems =
    run.problems.length === 0 ? 'checked' : `FAILED CHECKS: ${run.problems.join('; ')}`
  if ('watcherCount' in run) {
    const live =
      run.liveEventsPerSecond === null
        ? ''
        : `${Math.round(run.liveEventsPerSecond)} events/s per watcher, `
    const catchUp =
      run.catchUpMs === null ? '' : `caught up ${Math.round(run.catchUpMs)} ms after, `
    return `${live}${catchUp}${problems}`
  }
  if ('ackToEventP50Ms' in run)
    return `ack to event p50 ${run.ackToEventP50Ms.toFixed(2)} ms, p99 ${run.ackToEventP99Ms.toFixed(2)} ms, ${problems}`
  return `${run.events} events in ${run.durationS.toFixed(2)} s, ${problems}`
}

const { writes, latency, drain, profile, filesystem } = result
const setup =
  `${quick ? 'A quick run (--quick): ' : ''}Medians of ${runCount} interleaved rounds of ${durationS} s after ${warmupS} s of warm-up per case. ` +
  `slabkv \`--threads ${threads} --fsync always\`${serveArgs.length > 0 ? ` \`${serveArgs.join(' ')}\`` : ''}, one server per case, data directories on ${filesystem}. ` +
  `The machine has ${context.cpuCount} cores, shared by the server, wrk and the watchers' ` +
  `${processCount === 1 ? 'process' : `${processCount} processes`} (node:http clients that parse every event): ` +
  `the figures include that competition, as a real deployment with local consumers would. ` +
  `It is shared with other work too: its 1-minute load average was ${loadBefore.toFixed(1)} at the start ` +
  `and ${os.loadavg()[0]!.toFixed(1)} at the end (of ${context.cpuCount} cores). Server CPU per write moves far less than req/s with a neighbour's load.`
const markdown = [
  `### Writes with watchers\n\n\`wrk -t1 -c${connectionCount}\`, PUT /v1/kv/busy:<n> of ${valueSize} B, a random key of ${keyCount.toLocaleString('en-US')}; ` +
    `watchers of \`GET /v1/watch?prefix=busy:\`. Every event?: each watcher received exactly the changes the server counted between a start and an end marker, ids strictly increasing, the same ids as every other watcher. ` +
    `Events/s per watcher is what one received during the load; events per read, how many events a watcher got per read of its socket (at most what the server wrote at once); catch-up is how long after the load the slowest had the end marker.\n\n${writes.markdown}`,
  `### Delivery latency\n\n${latency.markdown}`,
  `### History read back\n\nOne watcher with since= before ${history.toLocaleString('en-US')} preloaded writes (batches of 1,000 sets), until it has the last: events/s from the log.\n\n${drain.markdown}`,
  setup,
  profile,
]
  .filter((part) => part !== '')
  .join('\n\n')
const json = {
  config: {
    runCount,
    durationS,
    warmupS,
    connectionCount,
    keyCount,
    valueSize,
    threads,
    watcherCounts,
    processCount,
    history,
    latencyRate,
    latencyWatchers,
    quick,
  },
  writes: writes.json,
  latency: latency.json,
  history: drain.json,
  profile,
}
publish('watch', context, dryRun, json, markdown)
