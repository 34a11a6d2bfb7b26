import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { summarizeProfiles } from './cpuprofile.js'
import { dialects } from './dialects.js'
import { loadOptions, loadSettings } from './measure.js'
import { runAutocannon } from './peers/autocannon.js'
import { renderChart } from './peers/chart.js'
import { keyCount, preload, type Scenario, scenarios, valueSize } from './peers/scenarios.js'
import {
  evaluate,
  markdownTables,
  type Run,
  type Summary,
  type SystemRef,
  summarize,
  type Target,
  targetLines,
} from './peers/summary.js'
import { root, runContext, writeResults } from './report.js'
import { processCpuS, stopAll } from './servers.js'
import { type RunningSystem, type SystemSpec, systemSpecs, targetSystemId } from './systems.js'
import { runWrk, writeScript } from './wrk.js'

// npm run bench:peers — slabkv beside what a user would otherwise run, in one run on one
// machine: webdis + Redis (with and without appendfsync always), fastify + lru-cache, Hono +
// Map, and slabkv in each mode (bench/peers/systems.ts). Every system gets the same logical
// requests (bench/peers/scenarios.ts) in its own dialect (bench/peers/dialects.ts), from wrk
// with Lua scripts (bench/peers/wrk.ts) and, for GET hit, from autocannon too. Each answer is
// checked; a system that answered wrongly or failed has no figure in that scenario, and the
// report says why. Rounds interleave the systems (A B C … A B C …); figures are medians.
// --profile <scenario> then runs one slabkv under --cpu-prof for that scenario and reports
// where its CPU time goes (bench/cpuprofile.ts); --runs 0 runs only that.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    'wrk-threads': { type: 'string', default: '1' },
    // Comma-separated ids (bench/peers/scenarios.ts, bench/peers/systems.ts); all when absent.
    scenarios: { type: 'string' },
    systems: { type: 'string' },
    profile: { type: 'string' },
    'profile-system': { type: 'string', default: targetSystemId },
    // Prints everything, writes nothing (for trying the benchmark itself).
    'dry-run': { type: 'boolean', default: false },
  },
})
const { runCount, durationS, warmupS, connectionCount } = loadSettings(args, 0)
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

const tools = [
  'wrk',
  ...(specs.some((s) => s.family === 'redis') ? ['redis-server', 'webdis'] : []),
]
for (const tool of tools) {
  if (spawnSync('which', [tool]).status !== 0) {
    console.error(`${tool} is missing: run \`bash scripts/ensure-system-packages.sh\` (apt-get)`)
    process.exit(1)
  }
}

const context = runContext(import.meta.url, ['src', 'workers', 'bench/peers'])
const workDir = mkdtempSync(join(os.tmpdir(), 'slabkv-bench-peers-'))
const filesystem = execFileSync('df', ['-T', workDir], { encoding: 'utf8' })
  .trim()
  .split('\n')
  .at(-1)
  ?.split(/\s+/)[1]
const env = { workDir }
const log = (line: string) => process.stderr.write(`${line}\n`)

function serverCpuS(system: RunningSystem): number | undefined {
  let total = 0
  for (const pid of system.pids) {
    const cpu = processCpuS(pid)
    if (cpu === undefined) return undefined
    total += cpu
  }
  return total
}

/** One measurement; a failure becomes a Run with its reason, never a figure. */
async function measure(
  system: RunningSystem,
  scenario: Scenario,
  scripts: Map<string, string>,
  seconds: number,
): Promise<Run> {
  const before = serverCpuS(system)
  try {
    const dialect = dialects[system.spec.dialect]
    const measurement =
      scenario.generator === 'wrk'
        ? await runWrk({
            url: system.url,
            script: scripts.get(`${scenario.id}.${dialect.name}`)!,
            threadCount: wrkThreadCount,
            connectionCount,
            seconds,
          })
        : await runAutocannon(system.url, dialect, connectionCount, seconds)
    const after = serverCpuS(system)
    const cpu = before === undefined || after === undefined ? null : after - before
    return { ...measurement, serverCpuS: cpu }
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

async function startAll(): Promise<RunningSystem[]> {
  const started: RunningSystem[] = []
  for (const spec of specs) {
    const system = await spec.start(env)
    log(`${spec.label}: ${system.url}, pids ${system.pids.join(' ')}: ${system.command}`)
    await preload(system.url, dialects[spec.dialect])
    started.push(system)
  }
  return started
}

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

async function measureAll(systems: RunningSystem[]): Promise<Summary[]> {
  const scripts = new Map<string, string>()
  for (const scenario of selectedScenarios.filter((s) => s.generator === 'wrk')) {
    for (const dialect of Object.values(dialects)) {
      const path = writeScript(workDir, scenario.id, keyCount, dialect, scenario.lua)
      scripts.set(`${scenario.id}.${dialect.name}`, path)
    }
  }
  const failures = await checkAll(systems)
  const plannedS = selectedScenarios.length * systems.length * (warmupS + runCount * durationS)
  let doneS = 0
  const start = Date.now()
  const progress = (seconds: number, what: string) => {
    doneS += seconds
    const leftS = ((Date.now() - start) / 1000 / doneS) * (plannedS - doneS)
    const percent = Math.round((doneS / plannedS) * 100)
    log(`[${percent}%, ~${Math.ceil(leftS / 60)} min left] ${what}`)
  }
  const summaries: Summary[] = []
  for (const scenario of selectedScenarios) {
    const runs = new Map<string, Run[]>()
    const measured = systems.filter((s) => !failures.has(`${scenario.id}\n${s.spec.id}`))
    for (const system of measured) {
      await measure(system, scenario, scripts, warmupS)
      progress(warmupS, `${scenario.title}, ${system.spec.label}: warmed up`)
    }
    for (let round = 0; round < runCount; round++) {
      for (const system of measured) {
        const run = await measure(system, scenario, scripts, durationS)
        runs.set(system.spec.id, [...(runs.get(system.spec.id) ?? []), run])
        const figures =
          run.error !== undefined
            ? `FAILED: ${run.error}`
            : `${Math.round(run.requestsPerSecond).toLocaleString('en-US')} req/s, ` +
              `p99 ${run.latencyP99Ms.toFixed(2)} ms, server CPU ${Math.round(((run.serverCpuS ?? Number.NaN) / run.durationS) * 100)}%, ` +
              `${run.generator} CPU ${Math.round((run.generatorCpuS / run.durationS) * 100)}%` +
              (run.badCount + run.socketErrorCount > 0
                ? `, ${run.badCount} WRONG answers (${run.badSample}), ${run.socketErrorCount} socket errors`
                : '')
        progress(
          durationS,
          `round ${round + 1}/${runCount} ${scenario.title}, ${system.spec.label}: ${figures}`,
        )
      }
    }
    for (const system of systems) {
      const failure = failures.get(`${scenario.id}\n${system.spec.id}`)
      const measuredRuns: Run[] =
        failure === undefined ? (runs.get(system.spec.id) ?? []) : [{ error: failure }]
      summaries.push(summarize(scenario, refOf(system.spec), measuredRuns))
    }
  }
  return summaries
}

/** Runs one slabkv under --cpu-prof for one scenario; the top self-time functions. */
async function profile(scenario: Scenario): Promise<string> {
  const dir = join(workDir, 'profile')
  mkdirSync(dir)
  const profileEnv = { workDir: join(workDir, 'profiled') }
  const system = await profileSpec.start(profileEnv, ['--cpu-prof', '--cpu-prof-dir', dir])
  const dialect = dialects[system.spec.dialect]
  await preload(system.url, dialect)
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
try {
  if (runCount > 0) {
    systems = await startAll()
    summaries = await measureAll(systems)
    await Promise.all(systems.map((system) => system.stop()))
  }
  if (profileScenario !== undefined) profileText = await profile(profileScenario)
} finally {
  await stopAll()
  rmSync(workDir, { recursive: true, force: true })
}
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
  `shared by all. Data directories on ${filesystem ?? 'unknown'}. Batches: /v1/batch against ` +
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
console.log(markdown)

if (!args['dry-run'] && summaries.length > 0) {
  const json = {
    config: { runCount, durationS, warmupS, connectionCount, wrkThreadCount, keyCount, valueSize },
    filesystem,
    systems: systems.map((s) => ({ ...refOf(s.spec), command: s.command, listening: s.listening })),
    results: summaries,
    targets: targetResults,
    profile: profileText ?? null,
  }
  writeResults('peers', context, json, markdown)
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
