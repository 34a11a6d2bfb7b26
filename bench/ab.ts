import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, symlinkSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { dialects } from './dialects.js'
import {
  cpuByThreadKind,
  loadOptions,
  loadSettings,
  type Measurement,
  median,
  statUserSystemS,
  type ThreadKind,
  threadKinds,
} from './measure.js'
import { keyCount, keyspace, scenarios as peerScenarios } from './peers/scenarios.js'
import { preload } from './preload.js'
import { git, publish, renderTable, root, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { requirePrograms, withWorkDir } from './servers.js'
import {
  fastifyLruSystem,
  honoMapSystem,
  type RunningSystem,
  type SystemSpec,
  slabkvSystem,
  startSystems,
} from './systems.js'
import { runWrk, writeScript } from './wrk.js'

// npm run bench:ab -- [options] <ref> <ref> …: slabkv built at each git revision, side by side
// in interleaved rounds, which is how a change earns its place (measure before and after, on the
// same machine, in the same minutes). `.` is this checkout as it is, built by the npm script;
// any other ref is checked out in a temporary worktree and built there. --peers adds the Node
// references (hono-map, fastify-lru) to every round. Scenarios, keys and requests are
// bench:peers' (bench/peers/scenarios.ts), sent by wrk.
//
// Per system and scenario, medians of the rounds: req/s, p99, and server CPU per request split
// every way that has told something so far: user and system time, handler threads and the WAL
// writer, plus records per group commit and snapshots written. The last column is each
// system's CPU per request over the first's, the median of the round-by-round ratios (each
// round's pair ran minutes apart at most, so the noise they share cancels).

const { values: args, positionals: refs } = parseArgs({
  allowPositionals: true,
  options: {
    ...loadOptions(2),
    scenarios: { type: 'string', default: 'get-hit,set-small,mix' },
    threads: { type: 'string', default: '1' },
    fsync: { type: 'string', default: 'always' },
    peers: { type: 'string', default: '' },
  },
})
const { runCount, durationS, warmupS, connectionCount, dryRun } = loadSettings(args)
const threadCount = Number(args.threads)
assert(Number.isSafeInteger(threadCount) && threadCount >= 1, '--threads ≥ 1')
const fsync = args.fsync as 'always' | 'everysec' | 'no'
assert(['always', 'everysec', 'no'].includes(fsync), '--fsync always, everysec or no')
assert(
  refs.length >= 1,
  'usage: npm run bench:ab -- [options] <ref> [<ref> …] (. is this checkout)',
)
const scenarios = args.scenarios!.split(',').map((id) => {
  const scenario = peerScenarios.find((s) => s.id === id)
  assert(scenario !== undefined && scenario.generator === 'wrk', `no wrk scenario ${id}`)
  return scenario
})
const peerSpecs: Record<string, () => SystemSpec> = {
  'hono-map': () => honoMapSystem(),
  'fastify-lru': () => fastifyLruSystem(),
}
const peers = args.peers === '' ? [] : args.peers!.split(',')
for (const peer of peers) assert(peer in peerSpecs, `--peers: one of ${Object.keys(peerSpecs)}`)
requirePrograms(['wrk'])
const context = runContext(import.meta.url, ['src', 'workers'])
const loadStart = os.loadavg()

/** The build of `ref`: this checkout's for `.`, else one made in a worktree under `dir`. */
function build(ref: string, index: number, dir: string): { cliPath: string; commit: string } {
  if (ref === '.') {
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'src', 'workers')
    const commit = `${git('rev-parse', '--short', 'HEAD')}${dirty === '' ? '' : '+edits'}`
    return { cliPath: join(root, 'dist', 'src', 'cli.js'), commit }
  }
  const tree = join(dir, `build-${index}`)
  git('worktree', 'add', '--detach', tree, ref)
  symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'))
  execFileSync('npx', ['tsc', '-b', 'tsconfig.json'], { cwd: tree, stdio: 'inherit' })
  return { cliPath: join(tree, 'dist', 'src', 'cli.js'), commit: git('rev-parse', '--short', ref) }
}

type Run = Measurement & {
  cpuS: Record<ThreadKind, number>
  userS: number
  systemS: number
  groupCommits: number
  records: number
  snapshots: number
}

async function walCounters(system: RunningSystem) {
  if (system.spec.family !== 'slabkv') return { groupCommits: 0, records: 0, snapshots: 0 }
  const stats = (await (await fetch(`${system.url}/v1/stats`)).json()) as {
    wal: { groupCommits: number; recordsWritten: number; snapshots: number }
  }
  const { groupCommits, recordsWritten, snapshots } = stats.wal
  return { groupCommits, records: recordsWritten, snapshots }
}

function userSystemS(pid: number) {
  return statUserSystemS(readFileSync(`/proc/${pid}/stat`, 'utf8'))
}

async function measure(system: RunningSystem, script: string, seconds: number): Promise<Run> {
  const pid = system.pids[0]!
  const walBefore = await walCounters(system)
  const cpuBefore = cpuByThreadKind(pid)
  const timesBefore = userSystemS(pid)
  const load = await runWrk({ url: system.url, script, threadCount: 1, connectionCount, seconds })
  const timesAfter = userSystemS(pid)
  const cpuAfter = cpuByThreadKind(pid)
  const walAfter = await walCounters(system)
  assert(load.badCount === 0 && load.socketErrorCount === 0, `wrong answers: ${load.badSample}`)
  const cpuS = Object.fromEntries(
    threadKinds.map((kind) => [kind, cpuAfter[kind] - cpuBefore[kind]]),
  ) as Record<ThreadKind, number>
  return {
    ...load,
    serverCpuS: timesAfter.userS + timesAfter.systemS - timesBefore.userS - timesBefore.systemS,
    cpuS,
    userS: timesAfter.userS - timesBefore.userS,
    systemS: timesAfter.systemS - timesBefore.systemS,
    groupCommits: walAfter.groupCommits - walBefore.groupCommits,
    records: walAfter.records - walBefore.records,
    snapshots: walAfter.snapshots - walBefore.snapshots,
  }
}

const result = await withWorkDir('ab', async (dir) => {
  const builds = refs.map((ref, index) => ({ ref, ...build(ref, index, dir) }))
  try {
    const specs = [
      ...builds.map(({ ref, commit, cliPath }, index) =>
        slabkvSystem({
          threads: threadCount,
          fsync,
          cliPath,
          id: `slabkv-${index}`,
          label: `slabkv ${ref === '.' ? commit : `${ref} (${commit})`}`,
        }),
      ),
      ...peers.map((peer) => peerSpecs[peer]!()),
    ]
    const systems = await startSystems(specs, dir)
    for (const system of systems) await preload(system.url, dialects.slabkv, keyspace)
    const scripts = new Map(
      scenarios.map((scenario) => [
        scenario,
        new Map(
          systems.map((system) => [
            system,
            writeScript(
              join(dir, system.spec.id),
              scenario.id,
              keyCount,
              dialects.slabkv,
              scenario.lua,
            ),
          ]),
        ),
      ]),
    )
    const rounds = await runRounds<(typeof scenarios)[number], Run>({
      scenarios,
      systemsIn: () => systems,
      runCount,
      warmupS,
      durationS,
      measure: (system, scenario, seconds) =>
        measure(system, scripts.get(scenario)!.get(system)!, seconds),
    })
    return { systems, rounds }
  } finally {
    for (let index = 0; index < builds.length; index++) {
      if (builds[index]!.ref !== '.') {
        git('worktree', 'remove', '--force', join(dir, `build-${index}`))
      }
    }
  }
})

const perRequestUs = (seconds: number, run: Run) => (seconds * 1e6) / run.requests
const sections: string[] = []
const figures: Record<string, Record<string, Record<string, number>>> = {}
for (const [scenario, bySystem] of result.rounds) {
  const first = [...bySystem.values()][0]!
  const rows: string[][] = []
  figures[scenario.id] = {}
  for (const [system, runs] of bySystem) {
    const m = (f: (run: Run) => number) => median(runs.map(f))
    const cpu = m((run) => perRequestUs(run.serverCpuS!, run))
    const ratios = runs.map(
      (run, round) =>
        perRequestUs(run.serverCpuS!, run) / perRequestUs(first[round]!.serverCpuS!, first[round]!),
    )
    const isSlabkv = system.spec.family === 'slabkv'
    const row = {
      requestsPerSecond: m((run) => run.requestsPerSecond),
      latencyP99Ms: m((run) => run.latencyP99Ms),
      serverCpuPerRequestUs: cpu,
      userUs: m((run) => perRequestUs(run.userS, run)),
      systemUs: m((run) => perRequestUs(run.systemS, run)),
      handlersUs: m((run) => perRequestUs(run.cpuS.handlers, run)),
      writerUs: m((run) => perRequestUs(run.cpuS.writer, run)),
      recordsPerCommit: m((run) => (run.groupCommits === 0 ? 0 : run.records / run.groupCommits)),
      snapshots: m((run) => run.snapshots),
      cpuRatio: median(ratios),
    }
    figures[scenario.id]![system.spec.label] = row
    const fixed = (n: number, digits = 1) => n.toFixed(digits)
    rows.push([
      system.spec.label,
      Math.round(row.requestsPerSecond).toLocaleString('en-US'),
      fixed(row.latencyP99Ms, 2),
      fixed(cpu),
      `${fixed(row.userUs)} / ${fixed(row.systemUs)}`,
      isSlabkv ? fixed(row.handlersUs) : '-',
      isSlabkv ? fixed(row.writerUs) : '-',
      isSlabkv && row.recordsPerCommit > 0 ? fixed(row.recordsPerCommit) : '-',
      isSlabkv ? String(row.snapshots) : '-',
      `${fixed(row.cpuRatio, 2)}× (${fixed(Math.min(...ratios), 2)}–${fixed(Math.max(...ratios), 2)})`,
    ])
  }
  sections.push(
    `**${scenario.title}**\n\n${renderTable(
      [
        [
          'system',
          'req/s',
          'p99 ms',
          'server CPU µs/req',
          'user / sys µs/req',
          'handlers µs/req',
          'writer µs/req',
          'records/commit',
          'snapshots/round',
          'CPU/req ÷ first (rounds)',
        ],
        ...rows,
      ],
      ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
    )}`,
  )
}
const loadEnd = os.loadavg()
const markdown =
  `slabkv at ${refs.length === 1 ? 'one build' : `${refs.length} builds`}${peers.length > 0 ? ` and ${peers.join(', ')}` : ''}: ${threadCount} handler thread${threadCount === 1 ? '' : 's'}, --fsync ${fsync}; medians of ${runCount} interleaved rounds of ${durationS} s after ${warmupS} s of warm-up each, wrk -t1 -c${connectionCount}, 10,000 keys of 100 B (bench:peers' scenarios). Load average ${loadStart.map((n) => n.toFixed(2)).join(' ')} at the start, ${loadEnd.map((n) => n.toFixed(2)).join(' ')} at the end.\n\n` +
  sections.join('\n\n')
publish('ab', context, dryRun, { refs, threadCount, fsync, figures }, markdown)
