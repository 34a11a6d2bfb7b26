import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { summarizeProfiles } from './cpuprofile.js'
import { dialects } from './dialects.js'
import {
  cpuByThreadKind,
  loadOptions,
  loadSettings,
  type Measurement,
  median,
  type ThreadKind,
  threadKinds,
  threadsOf,
} from './measure.js'
import { keyCount, keyspace, scenarios as peerScenarios } from './peers/scenarios.js'
import { preload } from './preload.js'
import { publish, renderTable, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { requirePrograms, withWorkDir } from './servers.js'
import { type RunningSystem, slabkvSystem, startSystems } from './systems.js'
import { runWrk, writeScript } from './wrk.js'

// npm run bench:profile — where each request's CPU goes, thread by thread, and the figures
// docs/performance.md builds its model from: slabkv with 1 and 2 handler threads, --fsync
// always, under wrk (GET hit, SET 100 B, 90% GET / 10% SET; bench:peers' scenarios and keys).
// Per measurement: the CPU of every thread of the server (/proc/<pid>/task/*/stat), by kind:
// handler threads, the WAL writer (the first worker thread started, src/main.ts step 5), the
// main thread, and V8's and libuv's own threads; the store lock's counters from /metrics (hold,
// wait, contention per operation); group commits and records from /v1/stats. Rounds interleave
// the two servers (bench/rounds.ts) and every figure is a median. Then, apart from the measured
// rounds (a traced server is slower), `strace -f -ff -T` on every thread for --strace-seconds
// under the same load: system calls per request by thread, futex calls per group commit, and
// fdatasync's latency. --cpu-profile runs each server once more under `node --cpu-prof`.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    'strace-seconds': { type: 'string', default: '3' },
    'cpu-profile': { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'get-hit,set-small,mix' },
  },
})
const { runCount, durationS, warmupS, connectionCount, dryRun } = loadSettings(args)
const straceS = Number(args['strace-seconds'])
const scenarios = args.scenarios!.split(',').map((id) => {
  const scenario = peerScenarios.find((s) => s.id === id)
  assert(scenario !== undefined, `no scenario ${id}`)
  return scenario
})
requirePrograms(['wrk', 'strace'])
const context = runContext(import.meta.url, ['src', 'workers'])
const loadStart = os.loadavg()

interface Counters {
  groupCommits: number
  records: number
  operations: number
  /** `family{operation="…"}` → value, from /metrics' slabkv_store_lock_* series. */
  lock: Map<string, number>
}

async function counters(system: RunningSystem): Promise<Counters> {
  const stats = (await (await fetch(`${system.url}/v1/stats`)).json()) as {
    hits: number
    misses: number
    sets: number
    wal: { groupCommits: number; recordsWritten: number }
  }
  const text = await (await fetch(`${system.url}/metrics`)).text()
  const lock = new Map<string, number>()
  for (const [, family, op, value] of text.matchAll(
    /^slabkv_store_lock_(\w+)\{operation="(\w+)"\} (\S+)$/gm,
  )) {
    lock.set(`${family}{${op}}`, Number(value))
  }
  return {
    groupCommits: stats.wal.groupCommits,
    records: stats.wal.recordsWritten,
    operations: stats.hits + stats.misses + stats.sets,
    lock,
  }
}

const lockOps = ['get', 'set'] as const
type Run = Measurement & {
  cpuS: Record<ThreadKind, number>
  groupCommits: number
  records: number
  /** Per store operation: acquisitions, hold and wait seconds, contended acquisitions. */
  lock: Record<string, { acquisitions: number; holdS: number; waitS: number; contended: number }>
  lockHoldS: number
}

async function measure(system: RunningSystem, script: string, seconds: number): Promise<Run> {
  const pid = system.pids[0]!
  const before = await counters(system)
  const cpuBefore = cpuByThreadKind(pid)
  const load = await runWrk({ url: system.url, script, threadCount: 1, connectionCount, seconds })
  const cpuAfter = cpuByThreadKind(pid)
  const after = await counters(system)
  assert(load.badCount === 0 && load.socketErrorCount === 0, `wrong answers: ${load.badSample}`)
  const delta = (key: string) => (after.lock.get(key) ?? 0) - (before.lock.get(key) ?? 0)
  const lock: Run['lock'] = {}
  let lockHoldS = 0
  for (const key of after.lock.keys()) {
    const [, family, op] = /^(\w+)\{(\w+)\}$/.exec(key)!
    if (family === 'hold_seconds_total') lockHoldS += delta(key)
    if (family !== 'acquisitions_total') continue
    lock[op!] = {
      acquisitions: delta(key),
      holdS: delta(`hold_seconds_total{${op}}`),
      waitS: delta(`wait_seconds_total{${op}}`),
      contended: delta(`contended_acquisitions_total{${op}}`),
    }
  }
  const cpuS = Object.fromEntries(
    threadKinds.map((k) => [k, cpuAfter[k] - cpuBefore[k]]),
  ) as Run['cpuS']
  return {
    ...load,
    serverCpuS: threadKinds.reduce((sum, k) => sum + cpuS[k], 0),
    cpuS,
    groupCommits: after.groupCommits - before.groupCommits,
    records: after.records - before.records,
    lock,
    lockHoldS,
  }
}

/** One traced load: system calls by thread kind, and what happened meanwhile. */
async function traced(system: RunningSystem, script: string, dir: string) {
  const pid = system.pids[0]!
  const kindOf = threadsOf(pid)
  mkdirSync(dir, { recursive: true })
  const wrk = runWrk({
    url: system.url,
    script,
    threadCount: 1,
    connectionCount,
    seconds: straceS + 2,
  })
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const before = await counters(system)
  const strace = ['-f', '-ff', '-T', '-o', join(dir, 'trace'), '-p', String(pid)]
  await new Promise<void>((resolve, reject) => {
    execFile('timeout', ['-s', 'INT', String(straceS), 'strace', ...strace], (error) =>
      error === null || error.code === 124 ? resolve() : reject(error),
    )
  })
  const after = await counters(system)
  await wrk
  const calls: Record<ThreadKind, Map<string, number>> = {
    handlers: new Map(),
    writer: new Map(),
    main: new Map(),
    other: new Map(),
  }
  const fdatasyncS: number[] = []
  for (const file of readdirSync(dir)) {
    const kind = kindOf.get(Number(file.split('.')[1]))?.kind ?? 'other'
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const name = /^(\w+)\(/.exec(line)?.[1]
      if (name === undefined) continue
      calls[kind].set(name, (calls[kind].get(name) ?? 0) + 1)
      const took = /<([\d.]+)>$/.exec(line)?.[1]
      if (name === 'fdatasync' && took !== undefined) fdatasyncS.push(Number(took))
    }
  }
  return {
    operations: after.operations - before.operations,
    groupCommits: after.groupCommits - before.groupCommits,
    records: after.records - before.records,
    calls,
    fdatasyncMs: fdatasyncS.length === 0 ? null : median(fdatasyncS) * 1000,
  }
}
type Trace = Awaited<ReturnType<typeof traced>>

const specs = [1, 2].map((threads) => slabkvSystem({ threads, fsync: 'always' }))
const result = await withWorkDir('profile', async (workDir) => {
  const systems = await startSystems(specs, workDir)
  for (const system of systems) await preload(system.url, dialects.slabkv, keyspace)
  const scripts = new Map(
    scenarios.map((s) => [s, writeScript(workDir, s.id, keyCount, dialects.slabkv, s.lua)]),
  )
  const rounds = await runRounds({
    scenarios,
    systemsIn: () => systems,
    runCount,
    warmupS,
    durationS,
    measure: (system, scenario, seconds) => measure(system, scripts.get(scenario)!, seconds),
  })
  const traces = new Map<string, Trace>()
  for (const scenario of scenarios) {
    for (const system of systems) {
      const dir = join(workDir, 'strace', `${scenario.id}-${system.spec.id}`)
      traces.set(
        `${scenario.id} ${system.spec.id}`,
        await traced(system, scripts.get(scenario)!, dir),
      )
      process.stderr.write(`traced ${scenario.title}, ${system.spec.label}\n`)
    }
  }
  const profiles: string[] = []
  if (args['cpu-profile']) {
    for (const spec of specs) {
      for (const scenario of scenarios) profiles.push(await cpuProfile(workDir, spec, scenario))
    }
  }
  return { systems, rounds, traces, profiles }
})

/** One server under `node --cpu-prof`: each thread's top functions, writer and handlers apart. */
async function cpuProfile(
  workDir: string,
  spec: (typeof specs)[number],
  scenario: (typeof scenarios)[number],
): Promise<string> {
  const dir = join(workDir, 'cpuprofile', `${spec.id}-${scenario.id}`)
  const env = { workDir: join(workDir, 'profiled', `${spec.id}-${scenario.id}`) }
  const system = await spec.start(env, ['--cpu-prof', '--cpu-prof-dir', dir])
  await preload(system.url, dialects.slabkv, keyspace)
  const script = writeScript(workDir, `cpu-${scenario.id}`, keyCount, dialects.slabkv, scenario.lua)
  const load = await runWrk({
    url: system.url,
    script,
    threadCount: 1,
    connectionCount,
    seconds: durationS,
  })
  await system.stop()
  // CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile: thread 0 is the main thread, 1 the writer.
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
  const thread = (name: string) => Number(name.split('.')[4])
  const part = (what: string, keep: (id: number) => boolean) => {
    const paths = files.filter((name) => keep(thread(name))).map((name) => join(dir, name))
    return paths.length === 0 ? '' : `${what}:\n\n${summarizeProfiles(paths, 8)}\n`
  }
  return [
    `#### ${scenario.title}, ${spec.label}: ${Math.round(load.requestsPerSecond)} req/s under the profiler\n`,
    part('Handler threads', (id) => id >= 2),
    part('WAL writer', (id) => id === 1),
  ].join('\n')
}

/** µs per operation; NaN (printed as -) when there was none. */
const perOpUs = (seconds: number, count: number) =>
  count === 0 ? Number.NaN : (seconds * 1e6) / count
const cpuRows = [
  [
    'scenario, server',
    'req/s',
    'server CPU µs/req',
    'handlers µs/req',
    'writer µs/req',
    'main µs/req',
    'V8/libuv µs/req',
    'commits/s',
    'records/commit',
    'writer µs/commit',
  ],
]
const lockRows = [
  [
    'scenario, server',
    'lock acquisitions/req',
    'get hold µs',
    'set hold µs',
    'get wait µs',
    'set wait µs',
    'contended %',
    'lock held % of time',
  ],
]
const json: Record<string, unknown> = {}
for (const [scenario, bySystem] of result.rounds) {
  for (const [system, runs] of bySystem) {
    const ok = runs
    const m = (f: (r: Run) => number) => median(ok.map(f))
    const per = (r: Run) => r.requests
    const op = (r: Run, name: string) =>
      r.lock[name] ?? { acquisitions: 0, holdS: 0, waitS: 0, contended: 0 }
    const acquisitions = (r: Run) => Object.values(r.lock).reduce((s, l) => s + l.acquisitions, 0)
    const contended = (r: Run) => Object.values(r.lock).reduce((s, l) => s + l.contended, 0)
    const row = {
      requestsPerSecond: m((r) => r.requestsPerSecond),
      serverUs: m((r) => (r.serverCpuS! * 1e6) / per(r)),
      ...Object.fromEntries(
        threadKinds.map((k) => [`${k}Us`, m((r) => (r.cpuS[k] * 1e6) / per(r))]),
      ),
      commitsPerSecond: m((r) => r.groupCommits / r.durationS),
      recordsPerCommit: m((r) => (r.groupCommits === 0 ? 0 : r.records / r.groupCommits)),
      writerUsPerCommit: m((r) =>
        r.groupCommits === 0 ? 0 : (r.cpuS.writer * 1e6) / r.groupCommits,
      ),
      acquisitionsPerRequest: m((r) => acquisitions(r) / per(r)),
      ...Object.fromEntries(
        lockOps.flatMap((name) => [
          [`${name}HoldUs`, m((r) => perOpUs(op(r, name).holdS, op(r, name).acquisitions))],
          [`${name}WaitUs`, m((r) => perOpUs(op(r, name).waitS, op(r, name).acquisitions))],
        ]),
      ),
      contendedPercent: m((r) => (100 * contended(r)) / Math.max(1, acquisitions(r))),
      lockHeldPercent: m((r) => (100 * r.lockHoldS) / r.durationS),
      runs: ok,
    }
    json[`${scenario.id} ${system.spec.id}`] = row
    const f = (n: number, digits = 1) => (Number.isNaN(n) ? '-' : n.toFixed(digits))
    const r = row as unknown as Record<string, number>
    const name = `${scenario.title}, ${system.spec.label}`
    cpuRows.push([
      name,
      Math.round(r.requestsPerSecond!).toLocaleString('en'),
      ...['serverUs', 'handlersUs', 'writerUs', 'mainUs', 'otherUs'].map((k) => f(r[k]!)),
      Math.round(r.commitsPerSecond!).toLocaleString('en'),
      f(r.recordsPerCommit!),
      f(r.writerUsPerCommit!),
    ])
    lockRows.push([
      name,
      f(r.acquisitionsPerRequest!, 2),
      ...['getHoldUs', 'setHoldUs', 'getWaitUs', 'setWaitUs'].map((k) => f(r[k]!, 2)),
      f(r.contendedPercent!, 2),
      f(r.lockHeldPercent!),
    ])
  }
}

const straceRows = [
  ['scenario, server', 'requests traced', 'syscalls/req, handlers', 'writer syscalls/commit'],
]
straceRows[0]!.push('futex/commit, all threads', 'futex/req, handlers', 'records/commit')
straceRows[0]!.push('fdatasync p50 ms', 'handlers: top calls per request')
for (const [key, t] of result.traces) {
  const [scenarioId, systemId] = key.split(' ')
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0)
  const futex = threadKinds.reduce((s, k) => s + (t.calls[k].get('futex') ?? 0), 0)
  const top = [...t.calls.handlers]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([name, n]) => `${name} ${(n / t.operations).toFixed(2)}`)
    .join(', ')
  straceRows.push([
    `${peerScenarios.find((s) => s.id === scenarioId)!.title}, ${result.systems.find((s) => s.spec.id === systemId)!.spec.label}`,
    t.operations.toLocaleString('en'),
    (sum(t.calls.handlers) / t.operations).toFixed(2),
    t.groupCommits === 0 ? '-' : (sum(t.calls.writer) / t.groupCommits).toFixed(1),
    t.groupCommits === 0 ? '-' : (futex / t.groupCommits).toFixed(1),
    ((t.calls.handlers.get('futex') ?? 0) / t.operations).toFixed(2),
    t.groupCommits === 0 ? '-' : (t.records / t.groupCommits).toFixed(1),
    t.fdatasyncMs === null ? '-' : t.fdatasyncMs.toFixed(2),
    top,
  ])
  json[`strace ${key}`] = {
    ...t,
    calls: Object.fromEntries(threadKinds.map((k) => [k, Object.fromEntries(t.calls[k])])),
  }
}

const loads = `load average ${loadStart.map((n) => n.toFixed(2)).join(' ')} at the start, ${os
  .loadavg()
  .map((n) => n.toFixed(2))
  .join(' ')} at the end`
const markdown = `Where each request's CPU goes, by thread (medians of ${runCount} interleaved rounds of ${durationS} s, wrk -t1 -c${connectionCount}, ${keyCount.toLocaleString('en')} keys of 100 B; ${loads}):

${renderTable(cpuRows)}

The store lock, from its counters in /metrics over the same rounds (hold and wait are per acquisition, sampled 1 in 16; "lock held" is the share of wall time some thread held it):

${renderTable(lockRows)}

System calls, from \`strace -f -ff -T\` on every thread for ${straceS} s under the same load, apart from the rounds (tracing slows the server, so these are counts, not rates):

${renderTable(straceRows, ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'left'])}

Threads: the WAL writer is the first worker thread started; the others are the handler threads; "V8/libuv" is every other thread of the process (the compiler, the garbage collector's helpers). Server CPU per request is from /proc/<pid>/task/*/stat.${result.profiles.length === 0 ? '' : `\n\n### CPU profiles (node --cpu-prof, ${durationS} s each)\n\n${result.profiles.join('\n')}`}`
publish('profile', context, dryRun, json, markdown)
