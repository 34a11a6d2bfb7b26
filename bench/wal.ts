import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadOptions, loadSettings, median, processesCpuS } from './measure.js'
import { renderTable, runContext, writeResults } from './report.js'
import { freePort, type Server, startServer, stopAll } from './servers.js'

// npm run bench:wal — what durability costs: slabkv in each --fsync mode, side by side in one
// run, under wrk (the load generator that is not the bottleneck here: C, one thread). PUTs show
// the write path (ring, writer thread, group commit, acknowledgement); GETs show what the read
// path's durability check costs. Rounds interleave the systems (A B C A B C ...); figures are
// medians. Each server's data directory is on the machine's temporary directory, a real disk
// here (the README says which): fdatasync there is what --fsync always waits for.

const { values: args } = parseArgs({
  options: {
    ...loadOptions(2),
    // Bytes per value: 16384 shows what snapshots of a large live state cost the write path.
    'value-size': { type: 'string', default: '100' },
    // Prints the table, writes nothing (for trying the benchmark itself).
    'dry-run': { type: 'boolean', default: false },
  },
})
const { runCount, durationS, warmupS, connectionCount } = loadSettings(args)
const keyCount = 10_000
const valueSize = Number(args['value-size'])
assert(Number.isSafeInteger(valueSize) && valueSize >= 1, '--value-size must be a positive integer')
const modes = ['always', 'everysec', 'no'] as const
/** Room for every key with half as much again to spare, so GETs hit and PUTs never evict. */
const memoryMiB = Math.max(64, Math.ceil((keyCount * (valueSize + 64) * 1.5) / 2 ** 20))

const wrkCheck = spawnSync('wrk', ['--version'], { encoding: 'utf8' })
if (wrkCheck.error !== undefined) {
  console.error(
    'wrk is missing: run `bash scripts/ensure-system-packages.sh` (apt-get install wrk)',
  )
  process.exit(1)
}

const context = runContext(import.meta.url, ['src', 'workers'])
const workDir = mkdtempSync(join(os.tmpdir(), 'slabkv-bench-wal-'))
const filesystem = execFileSync('df', ['-T', workDir], { encoding: 'utf8' })
  .trim()
  .split('\n')
  .at(-1)
  ?.split(/\s+/)[1]

// Lua scripts for wrk: a random key of keyCount per request, the same seed for every system.
const putScript = join(workDir, 'put.lua')
const getScript = join(workDir, 'get.lua')
const luaRandomKey = `math.randomseed(7)\nlocal function key() return "/v1/kv/key" .. math.random(0, ${keyCount - 1}) end\n`
writeFileSync(
  putScript,
  `${luaRandomKey}local body = string.rep("v", ${valueSize})\n` +
    'request = function() return wrk.format("PUT", key(), {["Content-Type"]="application/octet-stream"}, body) end\n' +
    // Any answer but 2xx counts as an error, never as throughput.
    'response = function(status) if status >= 300 then wrk.thread:set("bad", (wrk.thread:get("bad") or 0) + 1) end end\n',
)
writeFileSync(
  getScript,
  `${luaRandomKey}request = function() return wrk.format("GET", key()) end\n`,
)

interface Run {
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  non2xx: number
  serverCpuPerRequestUs: number | null
  recordsPerGroupCommit: number | null
}

function parseLatencyMs(text: string, label: string): number {
  const match = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s)`, 'm').exec(text)
  assert(match, `wrk printed no ${label} latency:\n${text}`)
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}

async function walStats(server: Server): Promise<{ groups: number; records: number }> {
  const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as {
    wal: { groupCommits: number; recordsWritten: number }
  }
  return { groups: stats.wal.groupCommits, records: stats.wal.recordsWritten }
}

async function measure(server: Server, script: string, seconds: number): Promise<Run> {
  const cpuBefore = processesCpuS([server.pid])
  const walBefore = await walStats(server)
  const out = execFileSync(
    'wrk',
    ['-t1', `-c${connectionCount}`, `-d${seconds}s`, '--latency', '-s', script, server.url],
    { encoding: 'utf8' },
  )
  const cpuAfter = processesCpuS([server.pid])
  const walAfter = await walStats(server)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1])
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const socketErrors = /Socket errors: (.*)/.exec(out)?.[1]
  assert(socketErrors === undefined, `${server.name}: socket errors: ${socketErrors}`)
  assert(non2xx === 0, `${server.name}: ${non2xx} answers were not 2xx; never counted`)
  const groups = walAfter.groups - walBefore.groups
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    latencyP50Ms: parseLatencyMs(out, '50%'),
    latencyP99Ms: parseLatencyMs(out, '99%'),
    non2xx,
    serverCpuPerRequestUs:
      cpuBefore === undefined || cpuAfter === undefined
        ? null
        : ((cpuAfter - cpuBefore) * 1e6) / requests,
    recordsPerGroupCommit: groups === 0 ? null : (walAfter.records - walBefore.records) / groups,
  }
}

/** Writes every key once, through batches, so every GET hits. */
async function preload(server: Server): Promise<void> {
  const value = 'v'.repeat(valueSize)
  // Batches of at most 1 MiB of values, well under the default request body limit.
  const batchSize = Math.max(1, Math.min(1000, Math.floor(2 ** 20 / valueSize)))
  for (let first = 0; first < keyCount; first += batchSize) {
    const ops = Array.from({ length: Math.min(batchSize, keyCount - first) }, (_, i) => ({
      op: 'set',
      key: `key${first + i}`,
      value,
    }))
    const response = await fetch(`${server.url}/v1/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ops }),
    })
    assert.equal(response.status, 200, `${server.name}: preload answered ${response.status}`)
  }
}

const servers: Server[] = []
const runs = new Map<string, Run[]>()
try {
  const cliPath = join(import.meta.dirname, '..', 'src', 'cli.js')
  for (const mode of modes) {
    const dir = join(workDir, mode)
    mkdirSync(dir)
    const port = await freePort()
    const argv = [cliPath, 'serve', '--host', '127.0.0.1', '--port', String(port), '--threads', '1']
    argv.push('--fsync', mode, '--max-entries', '100000', '--max-memory', `${memoryMiB}MiB`)
    argv.push('--data-dir', join(dir, 'data'))
    servers.push(await startServer(`--fsync ${mode}`, argv, dir))
  }
  const scenarios = [
    { name: 'PUT /v1/kv', script: putScript },
    { name: 'GET /v1/kv hit', script: getScript },
  ]
  for (const server of servers) await preload(server)
  for (const scenario of scenarios) {
    for (const server of servers) await measure(server, scenario.script, warmupS)
    for (let run = 0; run < runCount; run++) {
      for (const server of servers) {
        const result = await measure(server, scenario.script, durationS)
        const key = `${scenario.name}\n${server.name}`
        runs.set(key, [...(runs.get(key) ?? []), result])
        process.stderr.write(
          `run ${run + 1}/${runCount} ${scenario.name}, ${server.name}: ` +
            `${Math.round(result.requestsPerSecond)} req/s, p99 ${result.latencyP99Ms} ms, ` +
            `${result.recordsPerGroupCommit?.toFixed(1) ?? '-'} records per group commit\n`,
        )
      }
    }
  }

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
  const json: Record<string, unknown>[] = []
  for (const scenario of scenarios) {
    const baseline = median(
      runs.get(`${scenario.name}\n--fsync no`)!.map((r) => r.requestsPerSecond),
    )
    for (const server of servers) {
      const measured = runs.get(`${scenario.name}\n${server.name}`)!
      const rps = median(measured.map((r) => r.requestsPerSecond))
      const cpu = measured.map((r) => r.serverCpuPerRequestUs).filter((v) => v !== null)
      const groups = measured.map((r) => r.recordsPerGroupCommit).filter((v) => v !== null)
      const row = {
        scenario: scenario.name,
        system: server.name,
        requestsPerSecond: Math.round(rps),
        ratioToFsyncNo: rps / baseline,
        latencyP50Ms: median(measured.map((r) => r.latencyP50Ms)),
        latencyP99Ms: median(measured.map((r) => r.latencyP99Ms)),
        serverCpuPerRequestUs: cpu.length === 0 ? null : Math.round(median(cpu)),
        recordsPerGroupCommit: groups.length === 0 ? null : median(groups),
        runs: measured,
      }
      json.push(row)
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
  const table = renderTable(rows)
  const note =
    `Medians of ${runCount} interleaved runs of ${durationS} s after ${warmupS} s of warm-up per system ` +
    `and scenario; \`wrk -t1 -c${connectionCount} --latency\`, a random key of ${keyCount.toLocaleString('en-US')} per request, ` +
    `${valueSize}-byte values. slabkv \`--threads 1\`, data directory on ` +
    `${filesystem ?? 'unknown'} (${workDir}). Server CPU: all its threads, writer included.`
  console.log(`${table}\n\n${note}`)
  if (!args['dry-run'])
    writeResults(
      'wal',
      context,
      {
        config: { runCount, durationS, warmupS, connectionCount, keyCount, valueSize },
        results: json,
      },
      `${table}\n\n${note}`,
    )
} finally {
  await stopAll()
  rmSync(workDir, { recursive: true, force: true })
}
