import assert from 'node:assert/strict'
import { parseArgs } from 'node:util'
import { dialects } from './dialects.js'
import {
  assertAllRight,
  loadOptions,
  loadSettings,
  type Measurement,
  measureLoad,
  median,
  medianFigures,
} from './measure.js'
import { type Keyspace, preload } from './preload.js'
import { filesystemOf, publish, renderTable, runContext } from './report.js'
import { runRounds } from './rounds.js'
import { requirePrograms, withWorkDir } from './servers.js'
import { type RunningSystem, slabkvSystem, startSystems } from './systems.js'
import { getOkLua, prepareLua, runWrk, writeScript } from './wrk.js'

// npm run bench:wal — what durability costs: slabkv in each --fsync mode, side by side in one
// run, under wrk (the load generator that is not the bottleneck here: C, one thread). PUTs show
// the write path (ring, writer thread, group commit, acknowledgement); GETs show what the read
// path's durability check costs. Rounds interleave the systems (bench/rounds.ts); figures are
// medians. Each server's data directory is on the machine's temporary directory, a real disk
// here (the report says which): fdatasync there is what --fsync always waits for. Any answer
// but the scenario's fails the benchmark: an error answered fast must never count.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    // Bytes per value: 16384 shows what snapshots of a large live state cost the write path.
    'value-size': { type: 'string', default: '100' },
  },
})
const { runCount, durationS, warmupS, connectionCount, dryRun } = loadSettings(args)
const keyCount = 10_000
const valueSize = Number(args['value-size'])
// A value starts "value:", its key's 12 digits and ":" (bench/preload.ts).
assert(Number.isSafeInteger(valueSize) && valueSize >= 19, '--value-size must be an integer ≥ 19')
const keyspace: Keyspace = { keyCount, valueSize }
const modes = ['always', 'everysec', 'no'] as const
/** Room for every key with half as much again to spare, so GETs hit and PUTs never evict. */
const memoryMiB = Math.max(64, Math.ceil((keyCount * (valueSize + 64) * 1.5) / 2 ** 20))

requirePrograms(['wrk'])
const context = runContext(import.meta.url, ['src', 'workers'])

// wrk's Lua (bench/wrk.ts): a random preloaded key per request, the same sequence for every
// system. PUT replaces it with a value of the same size and prefix, formatted per request (at
// 16 KiB, 10,000 requests formatted up front would take 160 MiB of each Lua state).
const scenarios = [
  {
    id: 'put',
    title: 'PUT /v1/kv',
    lua: prepareLua(`local body = valueText(0, ${valueSize})
function nextRequest() return setRequest(key(math.random(keyCount) - 1), body) end
ok = setOk
`),
  },
  {
    id: 'get-hit',
    title: 'GET /v1/kv hit',
    lua: prepareLua(`local gets = {}
for n = 0, keyCount - 1 do gets[n + 1] = getRequest(key(n)) end
function nextRequest() return gets[math.random(keyCount)] end
${getOkLua(valueSize)}`),
  },
]

type Run = Measurement & { recordsPerGroupCommit: number | null }

async function walStats(system: RunningSystem): Promise<{ groups: number; records: number }> {
  const stats = (await (await fetch(`${system.url}/v1/stats`)).json()) as {
    wal: { groupCommits: number; recordsWritten: number }
  }
  return { groups: stats.wal.groupCommits, records: stats.wal.recordsWritten }
}

const { table, note, json } = await withWorkDir('wal', async (workDir) => {
  const filesystem = filesystemOf(workDir)
  const specs = modes.map((mode) =>
    slabkvSystem({
      threads: 1,
      fsync: mode,
      serveArgs: ['--max-entries', '100000', '--max-memory', `${memoryMiB}MiB`],
      id: mode,
      label: `--fsync ${mode}`,
    }),
  )
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
    async measure(system, scenario, seconds): Promise<Run> {
      const walBefore = await walStats(system)
      const run = await measureLoad(system.pids, () =>
        runWrk({
          url: system.url,
          script: scripts.get(scenario)!,
          threadCount: 1,
          connectionCount,
          seconds,
        }),
      )
      const walAfter = await walStats(system)
      assertAllRight(run, `${scenario.title}, ${system.spec.label}`)
      const groups = walAfter.groups - walBefore.groups
      const records = walAfter.records - walBefore.records
      return { ...run, recordsPerGroupCommit: groups === 0 ? null : records / groups }
    },
    note: (run) => `${run.recordsPerGroupCommit?.toFixed(1) ?? '-'} records per group commit`,
  })

  const rows: string[][] = [
    [
      'scenario, slabkv',
      'req/s',
      'ratio to --fsync no',
      'p50 / p99 ms',
      'server CPU µs/req',
      'records per group commit',
    ],
  ]
  const results: Record<string, unknown>[] = []
  for (const scenario of scenarios) {
    const runs = rounds.get(scenario)!
    const fsyncNo = systems.find((system) => system.spec.id === 'no')!
    const baseline = medianFigures(runs.get(fsyncNo)!).requestsPerSecond
    for (const system of systems) {
      const measured = runs.get(system)!
      const figures = medianFigures(measured)
      const groups = measured.map((r) => r.recordsPerGroupCommit).filter((v) => v !== null)
      const row = {
        scenario: scenario.title,
        system: system.spec.label,
        requestsPerSecond: Math.round(figures.requestsPerSecond),
        ratioToFsyncNo: figures.requestsPerSecond / baseline,
        latencyP50Ms: figures.latencyP50Ms,
        latencyP99Ms: figures.latencyP99Ms,
        serverCpuPerRequestUs:
          figures.serverCpuPerRequestUs === null ? null : Math.round(figures.serverCpuPerRequestUs),
        recordsPerGroupCommit: groups.length === 0 ? null : median(groups),
        runs: measured,
      }
      results.push(row)
      rows.push([
        `${row.scenario}, ${row.system}`,
        row.requestsPerSecond.toLocaleString('en-US'),
        `${row.ratioToFsyncNo.toFixed(2)}×`,
        `${row.latencyP50Ms.toFixed(2)} / ${row.latencyP99Ms.toFixed(2)}`,
        String(row.serverCpuPerRequestUs ?? '-'),
        row.recordsPerGroupCommit?.toFixed(1) ?? '-',
      ])
    }
  }
  const note =
    `Medians of ${runCount} interleaved runs of ${durationS} s after ${warmupS} s of warm-up per system ` +
    `and scenario; \`wrk -t1 -c${connectionCount}\`, a random key of ${keyCount.toLocaleString('en-US')} per request, ` +
    `${valueSize}-byte values, every answer checked. slabkv \`--threads 1\`, data directory on ` +
    `${filesystem} (${workDir}). Server CPU: all its threads, writer included.`
  const json = {
    config: { runCount, durationS, warmupS, connectionCount, keyCount, valueSize },
    results,
  }
  return { table: renderTable(rows), note, json }
})
publish('wal', context, dryRun, json, `${table}\n\n${note}`)
