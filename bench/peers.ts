import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { runAutocannon } from './autocannon.js'
import { summarizeProfiles } from './cpuprofile.js'
import { dialects } from './dialects.js'
import { loadOptions, loadSettings, measureLoad, type Run } from './measure.js'
import { renderChart } from './peers/chart.js'
import { keyCount, keyspace, type Scenario, scenarios, valueSize } from './peers/scenarios.js'
import {
  evaluate,
  markdownTables,
  type Summary,
  type SystemRef,
  summarize,
  type Target,
  targetLines,
} from './peers/summary.js'
import { preload } from './preload.js'
import { filesystemOf, publish, root, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { requirePrograms, withWorkDir } from './servers.js'
import {
  fastifyLruSystem,
  honoMapSystem,
  node,
  type RunningSystem,
  type SystemSpec,
  slabkvSystem,
  startSystems,
  webdisRedisSystem,
} from './systems.js'
import { runWrk, writeScript } from './wrk.js'

// npm run bench:peers — slabkv beside what a user would otherwise run, in one run on one
// machine: webdis + Redis (with and without appendfsync always), fastify + lru-cache, Hono +
// Map, and slabkv in each mode (bench/systems.ts). Every system gets the same logical requests
// (bench/peers/scenarios.ts) in its own dialect (bench/dialects.ts), from wrk with Lua scripts
// (bench/wrk.ts) and, for GET hit, from autocannon too. Each answer is checked; a system that
// answered wrongly or failed has no figure in that scenario, and the report says why. Rounds
// interleave the systems (bench/rounds.ts); figures are medians. --profile <scenario> then runs
// one slabkv under --cpu-prof for that scenario and reports where its CPU time goes
// (bench/cpuprofile.ts); --runs 0 runs only that.

/** Every system, in the order of each round. */
function systemSpecs(): SystemSpec[] {
  return [
    slabkvSystem({ threads: 1, fsync: 'always' }),
    slabkvSystem({ threads: 1, fsync: 'no' }),
    slabkvSystem({ threads: 2, fsync: 'always' }),
    slabkvSystem({ threads: 2, fsync: 'no' }),
    webdisRedisSystem(false),
    webdisRedisSystem(true),
    fastifyLruSystem(),
    honoMapSystem(),
  ]
}

/** The slabkv the targets are measured on: Node 24, 2 handler threads, --fsync always. */
const targetSystemId = `slabkv-${node}x2`

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    'wrk-threads': { type: 'string', default: '1' },
    // Comma-separated ids (bench/peers/scenarios.ts, systemSpecs above); all when absent.
    scenarios: { type: 'string' },
    systems: { type: 'string' },
    profile: { type: 'string' },
    'profile-system': { type: 'string', default: targetSystemId },
  },
})
const { runCount, durationS, warmupS, connectionCount, dryRun } = loadSettings(args, 0)
const wrkThreadCount = Number(args['wrk-threads'])
assert(Number.isSafeInteger(wrkThreadCount) && wrkThreadCount >= 1, '--wrk-threads ≥ 1')

function select<T extends { id: string }>(all: T[], list: string | undefined, what: string): T[] {
  if (list === undefined) return all
  const ids = list.split(',').filter((id) => id !== '')
  for (const id of ids) {
    assert(
      all.some((item) => item.id === id),
      `no ${what} ${id}; one of ${all.map((i) => i.id).join(', ')}`,
    )
  }
  return all.filter((item) => ids.includes(item.id))
}

const specs = select(systemSpecs(), args.systems, 'system')
const selectedScenarios = select(scenarios, args.scenarios, 'scenario')
const profileScenario =
  args.profile === undefined ? undefined : select(scenarios, args.profile, 'scenario')[0]
const profileSpec = select(systemSpecs(), args['profile-system'], 'system')[0]!

requirePrograms([
  'wrk',
  ...(specs.some((s) => s.family === 'redis') ? ['redis-server', 'webdis'] : []),
])

// The peers' code, how each system is started, and what they are sent.
const context = runContext(import.meta.url, [
  'src',
  'workers',
  'bench/peers',
  'bench/systems.ts',
  'bench/dialects.ts',
  'bench/wrk.ts',
])
const log = (line: string) => process.stderr.write(`${line}\n`)

/** One measurement; a failure becomes a Run with its reason, never a figure. */
async function measure(
  system: RunningSystem,
  scenario: Scenario,
  scripts: Map<string, string>,
  seconds: number,
): Promise<Run> {
  const dialect = dialects[system.spec.dialect]
  try {
    return await measureLoad(system.pids, () =>
      scenario.autocannon !== undefined
        ? runAutocannon({
            url: system.url,
            connectionCount,
            seconds,
            ...scenario.autocannon(dialect),
          })
        : runWrk({
            url: system.url,
            script: scripts.get(`${scenario.id}.${dialect.name}`)!,
            threadCount: wrkThreadCount,
            connectionCount,
            seconds,
          }),
    )
  } catch (error) {
    return { error: (error as Error).message.slice(0, 500) }
  }
}

const refOf = (spec: SystemSpec): SystemRef => ({
  id: spec.id,
  label: spec.label,
  family: spec.family,
  durable: spec.durable,
})

/** Every scenario's check against every system; the reason when a system fails one. */
async function checkAll(systems: RunningSystem[]): Promise<Map<string, string>> {
  const failures = new Map<string, string>()
  for (const scenario of selectedScenarios) {
    for (const system of systems) {
      try {
        await scenario.check(system.url, dialects[system.spec.dialect])
      } catch (error) {
        const reason = `check failed: ${(error as Error).message.slice(0, 300)}`
        failures.set(`${scenario.id}\n${system.spec.id}`, reason)
        log(`${scenario.title}, ${system.spec.label}: ${reason}`)
      }
    }
  }
  return failures
}

async function measureAll(workDir: string, systems: RunningSystem[]): Promise<Summary[]> {
  const scripts = new Map<string, string>()
  for (const scenario of selectedScenarios.filter((s) => s.generator === 'wrk')) {
    for (const dialect of Object.values(dialects)) {
      const path = writeScript(workDir, scenario.id, keyCount, dialect, scenario.lua)
      scripts.set(`${scenario.id}.${dialect.name}`, path)
    }
  }
  const failures = await checkAll(systems)
  const failure = (scenario: Scenario, system: RunningSystem) =>
    failures.get(`${scenario.id}\n${system.spec.id}`)
  const rounds = await runRounds({
    scenarios: selectedScenarios,
    systemsIn: (scenario) => systems.filter((system) => failure(scenario, system) === undefined),
    runCount,
    warmupS,
    durationS,
    measure: (system, scenario, seconds) => measure(system, scenario, scripts, seconds),
  })
  return selectedScenarios.flatMap((scenario) =>
    systems.map((system) => {
      const failed = failure(scenario, system)
      const runs: Run[] =
        failed === undefined ? (rounds.get(scenario)?.get(system) ?? []) : [{ error: failed }]
      return summarize(scenario, refOf(system.spec), runs)
    }),
  )
}

/** Runs one slabkv under --cpu-prof for one scenario; the top self-time functions. */
async function profile(workDir: string, scenario: Scenario): Promise<string> {
  const dir = join(workDir, 'profile')
  mkdirSync(dir)
  const profileEnv = { workDir: join(workDir, 'profiled') }
  const system = await profileSpec.start(profileEnv, ['--cpu-prof', '--cpu-prof-dir', dir])
  const dialect = dialects[system.spec.dialect]
  await preload(system.url, dialect, keyspace)
  await scenario.check(system.url, dialect)
  const scripts = new Map<string, string>()
  if (scenario.generator === 'wrk') {
    const path = writeScript(workDir, `profile-${scenario.id}`, keyCount, dialect, scenario.lua)
    scripts.set(`${scenario.id}.${dialect.name}`, path)
  }
  await measure(system, scenario, scripts, warmupS)
  const startUs = Number(process.hrtime.bigint() / 1000n)
  const run = await measure(system, scenario, scripts, durationS)
  const window = { startUs, endUs: Number(process.hrtime.bigint() / 1000n) }
  await system.stop() // The profiles are written as the process exits.
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => join(dir, name))
  assert(files.length > 0, `${system.spec.label} wrote no .cpuprofile in ${dir}`)
  const figures =
    run.error !== undefined
      ? `the run failed: ${run.error}`
      : `${Math.round(run.requestsPerSecond).toLocaleString('en-US')} req/s under the profiler`
  return (
    `Where the time goes: ${system.spec.label} under \`node --cpu-prof\`, ${scenario.title} ` +
    `(${scenario.generator}, ${durationS} s after ${warmupS} s of warm-up, ${figures}).\n\n` +
    summarizeProfiles(files, 20, window)
  )
}

const benchStart = Date.now()
let summaries: Summary[] = []
let systems: RunningSystem[] = []
let profileText: string | undefined
let filesystem = 'unknown'
await withWorkDir('peers', async (workDir) => {
  filesystem = filesystemOf(workDir)
  if (runCount > 0) {
    systems = await startSystems(specs, workDir)
    for (const system of systems) await preload(system.url, dialects[system.spec.dialect], keyspace)
    summaries = await measureAll(workDir, systems)
    await Promise.all(systems.map((system) => system.stop()))
  }
  if (profileScenario !== undefined) profileText = await profile(workDir, profileScenario)
})
const benchMinutes = ((Date.now() - benchStart) / 60_000).toFixed(1)

const peers = systems.filter((s) => s.spec.family !== 'slabkv').map((s) => refOf(s.spec))
const targets: Target[] = [
  {
    title: 'GET hit, slabkv (Node 24, 2 threads) ÷ fastify + lru-cache',
    scenarioId: 'get-hit',
    systemId: targetSystemId,
    peerId: 'fastify-lru',
    ratioMin: 1,
  },
  {
    title:
      'SET 100 B, slabkv --fsync always (Node 24, 2 threads) ÷ webdis + Redis appendfsync always',
    scenarioId: 'set-small',
    systemId: targetSystemId,
    peerId: 'webdis-redis-aof',
    ratioMin: 1,
  },
  {
    title: 'GET hit, slabkv (Node 24, 2 threads) ÷ webdis + Redis',
    scenarioId: 'get-hit',
    systemId: targetSystemId,
    peerId: 'webdis-redis',
    ratioMin: 0.6,
  },
]
const targetResults = targets.map((target) => evaluate(target, summaries))
const note =
  `Medians of ${runCount} round${runCount === 1 ? '' : 's'} of ${durationS} s, the systems interleaved in each, after ` +
  `${warmupS} s of warm-up per system and scenario. wrk \`-t${wrkThreadCount} -c${connectionCount}\` ` +
  `with a Lua script per scenario (a random key of ${keyCount.toLocaleString('en-US')} per request, ` +
  `the same sequence for every system; every answer's status and body shape checked in wrk's response hook, and one of each request ` +
  `checked for the exact bytes with fetch before any load; wrong answers are never counted); autocannon ` +
  `(${connectionCount} connections, in the benchmark's process) for GET hit only. Every system ` +
  `preloaded with ${keyCount.toLocaleString('en-US')} keys of ${valueSize}-byte values. Server CPU: ` +
  `all the system's processes and threads (webdis and Redis together); load generator CPU from ` +
  `wrk's /proc/self/stat or this process's cpuUsage, in % of one core; ${os.cpus().length} cores ` +
  `shared by all. Data directories on ${filesystem}. Batches: /v1/batch against ` +
  `webdis MGET/MSET (see bench/peers/scenarios.ts). Took ${benchMinutes} min.`
const commands = systems.map((s) => `- ${s.spec.label}: \`${s.command}\``).join('\n')
const markdown = [
  summaries.length > 0 ? markdownTables(summaries, peers) : '',
  summaries.length > 0 ? `Targets (ratios in this run):\n\n${targetLines(targetResults)}` : '',
  profileText ?? '',
  summaries.length > 0 ? note : '',
  commands === '' ? '' : `Systems:\n\n${commands}`,
]
  .filter((part) => part !== '')
  .join('\n\n')
const written = !dryRun && summaries.length > 0
publish(
  'peers',
  context,
  !written,
  {
    config: { runCount, durationS, warmupS, connectionCount, wrkThreadCount, keyCount, valueSize },
    filesystem,
    systems: systems.map((s) => ({ ...refOf(s.spec), command: s.command, listening: s.listening })),
    results: summaries,
    targets: targetResults,
    profile: profileText ?? null,
  },
  markdown,
)
if (written) {
  const stamp = `${context.date.slice(0, 10)} · commit ${context.commit} · ${context.cpuModel}, ${context.cpuCount} cores · \`${context.command}\``
  const chart = renderChart(summaries, [
    'slabkv and its peers over HTTP on one machine',
    stamp,
    `Medians of ${runCount} interleaved round${runCount === 1 ? '' : 's'} of ${durationS} s, ${connectionCount} connections. Darker: a write is acknowledged after fsync.`,
  ])
  writeFileSync(join(root, 'bench', 'results', 'peers.svg'), chart)
  log(
    `README: measured ${context.date.slice(0, 10)} on ${context.cpuModel} (${context.cpuCount} cores), ` +
      `commit ${context.commit}, \`${context.command}\`: bench/RESULTS.md, bench/results/peers.svg`,
  )
}
