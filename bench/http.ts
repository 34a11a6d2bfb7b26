import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { autocannon, type AutocannonRequest as Request, recordLatencies } from './autocannon.js'
import { createRandom, loadOptions, loadSettings, median, processesCpuS } from './measure.js'
import { renderTable, root, runContext, writeResults } from './report.js'
import { freePort, type Server, startServer, stopAll } from './servers.js'

// The HTTP benchmark: the real `slabkv serve` as a child process, beside a reference server
// (bench/peers/hono-map.ts: Hono, @hono/node-server and a plain Map, nothing else), both run by
// the node binary running this file, both loaded by autocannon from this process.
//
// Each system is preloaded with the same keys, then every scenario sends identical requests to
// both: autocannon's setupRequest draws keys from a seeded generator, restarted per measurement,
// so both systems see the same sequence. Runs interleave the systems (A B, then B A, ...) so a
// noisy neighbour lands on both, and the figures reported are medians of the runs. Each
// measurement follows a short warm-up against the same system (fresh connections, JIT).
//
// A response whose status the scenario does not expect (anything but 2xx, or the 404 a miss
// must get) fails the benchmark: an error answered fast must never count as throughput.
//
// The load generator shares the machine with the servers: on 2 cores autocannon's own thread
// takes most of one, so each measurement records the CPU this process used (process.cpuUsage)
// and the CPU the server used (/proc/<pid>/stat), as a share of one core. A server near 100%
// is the bottleneck; a load generator near 100% means the figure is the generator's limit.

const cliPath = join(root, 'dist', 'src', 'cli.js')
const referencePath = join(root, 'dist', 'bench', 'peers', 'hono-map.js')

const { values: args } = parseArgs({
  options: {
    ...loadOptions(1),
    // Handler threads of the second slabkv, run where Node can share a port (>= 22.12).
    threads: { type: 'string', default: '2' },
    // Runs only the scenarios whose name starts with this.
    scenario: { type: 'string' },
    // slabkv's --fsync mode: always (the default) acknowledges after fdatasync.
    fsync: { type: 'string', default: 'always' },
    'dry-run': { type: 'boolean', default: false },
  },
})
const { runCount, durationS, warmupS, connectionCount } = loadSettings(args)
const threadCount = Number(args.threads)
/** Prints the table without touching bench/RESULTS.md or bench/results/http.json. */
const dryRun = args['dry-run']
assert(Number.isSafeInteger(threadCount) && threadCount >= 2, '--threads must be ≥ 2')

const pipelining = 1
const keyCount = 10_000
const valueSize = 100
const batchOpCount = 100
const batchSetCount = 10
/** Distinct request bodies per batch scenario, drawn at random per request. */
const batchBodyCount = 1024
const mixSetPerMille = 100
const fsyncMode = args.fsync
assert(['always', 'everysec', 'no'].includes(fsyncMode), '--fsync must be always, everysec or no')
const serverArgs = ['--max-entries', '100000', '--max-memory', '64MiB', '--fsync', fsyncMode]
const seed = 0x5eed

const digits = (n: number) => String(n).padStart(12, '0')
/** 16-byte keys, as in the store bench. /set writes its own keys so /v1/kv values stay bytes. */
const kvKeys = Array.from({ length: keyCount }, (_, n) => `key:${digits(n)}`)
const setKeys = Array.from({ length: keyCount }, (_, n) => `set:${digits(n)}`)
const kvPaths = kvKeys.map((key) => `/v1/kv/${key}`)
const missPaths = kvKeys.map((_, n) => `/v1/kv/nokey:${digits(n)}`)
/** 100 ASCII characters, so the same text is 100 bytes as a body and 100 chars in JSON. */
const valueText = (tag: string, n: number) => `${tag}:${n}:`.padEnd(valueSize, 'x')
const preloadValue = (n: number) => valueText('value', n)
const putBody = Buffer.from(valueText('put', 0))
const setBodies = setKeys.map((key, n) =>
  Buffer.from(JSON.stringify({ key, value: valueText('set', n) })),
)
const octetHeaders = { 'Content-Type': 'application/octet-stream' }
const jsonHeaders = { 'Content-Type': 'application/json' }
assert.equal(putBody.byteLength, valueSize)

/** 90 gets and 10 sets at random places, on random preloaded keys. */
function batchBodies(random: () => number): Buffer[] {
  const pick = () => kvKeys[Math.floor(random() * keyCount)]!
  return Array.from({ length: batchBodyCount }, (_, b) => {
    const ops: object[] = Array.from({ length: batchOpCount }, () => ({ op: 'get', key: pick() }))
    for (let s = 0; s < batchSetCount; s++) {
      let index = Math.floor(random() * batchOpCount)
      while ((ops[index] as { op: string }).op === 'set') index = (index + 1) % batchOpCount
      ops[index] = { op: 'set', key: pick(), value: valueText('batch', b) }
    }
    return Buffer.from(JSON.stringify({ ops }))
  })
}
const batchPool = batchBodies(createRandom(seed ^ 0xba7c4))

interface Scenario {
  name: string
  /** Statuses that count as throughput; any other fails the benchmark. */
  statuses: number[]
  /** Store operations per request: req/s × this is ops/s. */
  opsPerRequest: number
  /** One request template for autocannon, drawing from `random` per request. */
  request(random: () => number): Request
  /** Sends one such request with fetch and checks the answer, before any load. */
  check(url: string): Promise<void>
}

const pickOf = (random: () => number) => Math.floor(random() * keyCount)

async function expectStatus(response: Response, status: number, what: string): Promise<string> {
  const text = await response.text()
  assert.equal(response.status, status, `${what}: ${response.status} ${text.slice(0, 200)}`)
  return text
}

const scenarios: Scenario[] = [
  {
    name: 'GET /v1/kv hit',
    statuses: [200],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const text = await expectStatus(await fetch(url + kvPaths[7]!), 200, 'GET hit')
      assert.equal(text, preloadValue(7), 'GET hit answered other bytes')
    },
  },
  {
    name: 'GET /v1/kv miss',
    statuses: [404],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = missPaths[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      await expectStatus(await fetch(url + missPaths[7]!), 404, 'GET miss')
    },
  },
  {
    name: 'PUT /v1/kv',
    statuses: [200, 201],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'PUT',
      headers: octetHeaders,
      body: putBody,
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'PUT', headers: octetHeaders, body: putBody }
      await expectStatus(await fetch(url + kvPaths[keyCount - 1]!, init), 200, 'PUT replace')
      const text = await expectStatus(await fetch(url + kvPaths[keyCount - 1]!), 200, 'GET')
      assert.equal(text, putBody.toString(), 'PUT did not store its body')
    },
  },
  {
    name: 'POST /set',
    statuses: [200],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'POST',
      path: '/set',
      headers: jsonHeaders,
      setupRequest: (request) => {
        request.body = setBodies[pickOf(random)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'POST', headers: jsonHeaders, body: setBodies[7]! }
      const text = await expectStatus(await fetch(`${url}/set`, init), 200, 'POST /set')
      assert.deepEqual(JSON.parse(text), { status: 'success' })
      const read = await expectStatus(await fetch(`${url}/get/${setKeys[7]!}`), 200, 'GET /get')
      assert.deepEqual(JSON.parse(read), { key: setKeys[7], value: valueText('set', 7) })
    },
  },
  {
    name: 'mix 90% GET / 10% PUT',
    statuses: [200, 201],
    opsPerRequest: 1,
    request: (random) => ({
      method: 'GET',
      setupRequest: (request) => {
        request.path = kvPaths[pickOf(random)]!
        if (random() * 1000 < mixSetPerMille) {
          request.method = 'PUT'
          request.headers = { ...octetHeaders }
          request.body = putBody
        }
        return request
      },
    }),
    async check() {}, // Its two requests are checked by the GET hit and PUT scenarios.
  },
  {
    name: `POST /v1/batch, ${batchOpCount} ops`,
    statuses: [200],
    opsPerRequest: batchOpCount,
    request: (random) => ({
      method: 'POST',
      path: '/v1/batch',
      headers: jsonHeaders,
      setupRequest: (request) => {
        request.body = batchPool[Math.floor(random() * batchBodyCount)]!
        return request
      },
    }),
    async check(url) {
      const init = { method: 'POST', headers: jsonHeaders, body: batchPool[0]! }
      const text = await expectStatus(await fetch(`${url}/v1/batch`, init), 200, 'batch')
      const { results } = JSON.parse(text) as { results: { value?: string; version?: number }[] }
      assert.equal(results.length, batchOpCount)
      const ops = (JSON.parse(batchPool[0]!.toString()) as { ops: { op: string }[] }).ops
      for (const [index, op] of ops.entries()) {
        const result = results[index]!
        if (op.op === 'get') assert.equal(result.value?.length, valueSize, 'a batch get missed')
        else assert.equal(typeof result.version, 'number', 'a batch set failed')
      }
    },
  },
]
const getHitName = scenarios[0]!.name

async function preload(server: Server): Promise<void> {
  const chunkSize = 1000 // slabkv's default --max-batch-ops.
  for (let first = 0; first < keyCount; first += chunkSize) {
    const ops = kvKeys
      .slice(first, first + chunkSize)
      .map((key, i) => ({ op: 'set', key, value: preloadValue(first + i) }))
    const response = await fetch(`${server.url}/v1/batch`, {
      method: 'POST',
      headers: jsonHeaders,
      body: JSON.stringify({ ops }),
    })
    await expectStatus(response, 200, `${server.name} preload`)
  }
}

// ---- Measurement

interface Run {
  requestsPerSecond: number
  /** From every response's time, as autocannon measures it, to 0.01 ms (its own histogram has 1 ms steps). */
  latencyP50Ms: number
  latencyP99Ms: number
  /** Share of one core used by this process (autocannon) during the run, in percent. */
  loadGeneratorCpuPercent: number
  /** Share of one core used by the server process (all its threads), in percent. */
  serverCpuPercent: number | null
  /**
   * Server CPU time per response, in microseconds: what a request costs the server, which moves
   * far less than req/s when a neighbour takes CPU from the machine.
   */
  serverCpuPerRequestUs: number | null
  statusCounts: Record<string, number>
}

async function load(server: Server, scenario: Scenario, seconds: number): Promise<Run> {
  const instance = autocannon({
    url: server.url,
    connections: connectionCount,
    pipelining,
    duration: seconds,
    requests: [scenario.request(createRandom(seed))],
  })
  const percentiles = recordLatencies(instance)
  const wallStart = process.hrtime.bigint()
  const cpuStart = process.cpuUsage()
  const serverCpuStart = processesCpuS([server.pid])
  const result = await instance
  const cpu = process.cpuUsage(cpuStart)
  const serverCpuEnd = processesCpuS([server.pid])
  const wallS = Number(process.hrtime.bigint() - wallStart) / 1e9
  const serverCpuS =
    serverCpuStart === undefined || serverCpuEnd === undefined
      ? undefined
      : serverCpuEnd - serverCpuStart

  const statusCounts = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([status, { count }]) => [status, count]),
  )
  const unexpected = Object.entries(statusCounts).filter(
    ([status]) => !scenario.statuses.includes(Number(status)),
  )
  if (unexpected.length > 0 || result.errors > 0 || result.mismatches > 0) {
    throw new Error(
      `${scenario.name} on ${server.name}: ${result.errors} connection errors ` +
        `(${result.timeouts} timeouts), unexpected statuses ${JSON.stringify(Object.fromEntries(unexpected))}; ` +
        `expected only ${scenario.statuses.join('/')}. Errors are never counted as throughput.`,
    )
  }
  assert(result.requests.total > 0, `${scenario.name} on ${server.name}: no responses`)
  const percentile = percentiles()
  const round2 = (n: number) => Math.round(n * 100) / 100
  return {
    requestsPerSecond: Math.round(result.requests.average),
    latencyP50Ms: round2(percentile(50)),
    latencyP99Ms: round2(percentile(99)),
    loadGeneratorCpuPercent: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 100),
    serverCpuPercent: serverCpuS === undefined ? null : Math.round((serverCpuS / wallS) * 100),
    serverCpuPerRequestUs:
      serverCpuS === undefined ? null : Math.round((serverCpuS / result.requests.total) * 1e6),
    statusCounts,
  }
}

interface SystemResult {
  system: string
  requestsPerSecond: number
  opsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  loadGeneratorCpuPercent: number
  serverCpuPercent: number | null
  serverCpuPerRequestUs: number | null
  runs: Run[]
}

function summarize(system: string, scenario: Scenario, runs: Run[]): SystemResult {
  const requestsPerSecond = Math.round(median(runs.map((r) => r.requestsPerSecond)))
  const medianOrNull = (values: (number | null)[]) => {
    const known = values.filter((v) => v !== null)
    return known.length === 0 ? null : Math.round(median(known))
  }
  return {
    system,
    requestsPerSecond,
    opsPerSecond: requestsPerSecond * scenario.opsPerRequest,
    latencyP50Ms: median(runs.map((r) => r.latencyP50Ms)),
    latencyP99Ms: median(runs.map((r) => r.latencyP99Ms)),
    loadGeneratorCpuPercent: Math.round(median(runs.map((r) => r.loadGeneratorCpuPercent))),
    serverCpuPercent: medianOrNull(runs.map((r) => r.serverCpuPercent)),
    serverCpuPerRequestUs: medianOrNull(runs.map((r) => r.serverCpuPerRequestUs)),
    runs,
  }
}

// ---- Main

const grouped = (n: number) => Math.round(n).toLocaleString('en-US')
const round3 = (n: number) => Math.round(n * 1000) / 1000

// A figure measured on uncommitted server code says so.
const context = runContext(import.meta.url, ['src', 'workers'])
const selected = scenarios.filter(
  (s) => args.scenario === undefined || s.name.startsWith(args.scenario),
)
assert(selected.length > 0, `no scenario starts with ${args.scenario}`)
for (const path of [cliPath, referencePath]) assert(existsSync(path), `${path}: run npm run build`)

const slabkvName = 'slabkv'
const referenceName = 'hono-map'
const threadedName = `slabkv --threads ${threadCount}`
const workDir = mkdtempSync(join(os.tmpdir(), 'slabkv-bench-http-'))
const benchStart = process.hrtime.bigint()
const results: { scenario: string; opsPerRequest: number; systems: SystemResult[] }[] = []
const servers: Server[] = []
try {
  // Single-thread slabkv: --threads 1 makes it one handler thread, where the default is one
  // per core.
  const serve = async (name: string, threads: number) => {
    const dir = join(workDir, name.replaceAll(/\W+/g, '-'))
    mkdirSync(dir)
    const port = await freePort()
    const argv = [cliPath, 'serve', '--host', '127.0.0.1', '--port', String(port)]
    return startServer(name, [...argv, ...serverArgs, '--threads', String(threads)], dir)
  }
  servers.push(await serve(slabkvName, 1))
  servers.push(await startServer(referenceName, [referencePath, String(await freePort())], workDir))
  servers.push(await serve(threadedName, threadCount))
  for (const server of servers) {
    process.stderr.write(
      `${server.name}: ${server.url}, threads ${server.listening.threads ?? 1}\n`,
    )
    await preload(server)
    for (const scenario of selected) await scenario.check(server.url)
  }

  const runsBySystem = new Map<string, Run[]>()
  for (let run = 0; run < runCount; run++) {
    for (const scenario of selected) {
      // Only GET hit is measured with the threaded server, which answers the threads question.
      const inScenario = servers.filter(
        (s) => s.name !== threadedName || scenario.name === getHitName,
      )
      const order = run % 2 === 0 ? inScenario : [...inScenario].reverse()
      for (const server of order) {
        await load(server, scenario, warmupS)
        const measured = await load(server, scenario, durationS)
        const key = `${scenario.name}\n${server.name}`
        runsBySystem.set(key, [...(runsBySystem.get(key) ?? []), measured])
        process.stderr.write(
          `run ${run + 1}/${runCount} ${scenario.name}, ${server.name}: ` +
            `${grouped(measured.requestsPerSecond)} req/s, p50 ${measured.latencyP50Ms} ms, ` +
            `p99 ${measured.latencyP99Ms} ms, load generator CPU ${measured.loadGeneratorCpuPercent}%, ` +
            `server CPU ${measured.serverCpuPercent ?? '?'}%, ${measured.serverCpuPerRequestUs ?? '?'} µs/req\n`,
        )
      }
    }
  }
  for (const scenario of selected) {
    const systems = servers
      .map((server) => ({ server, runs: runsBySystem.get(`${scenario.name}\n${server.name}`) }))
      .filter((entry) => entry.runs !== undefined)
      .map(({ server, runs }) => summarize(server.name, scenario, runs!))
    results.push({ scenario: scenario.name, opsPerRequest: scenario.opsPerRequest, systems })
  }
} finally {
  await stopAll()
  rmSync(workDir, { recursive: true, force: true })
}
const benchDurationS = Math.round(Number(process.hrtime.bigint() - benchStart) / 1e8) / 10

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
      `${servers[2]?.listening.threads} threads): ${grouped(getHitThreaded.requestsPerSecond)} req/s, ` +
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
  `Medians of ${runCount} runs per system, the systems interleaved, each run ${durationS} s ` +
  `after a ${warmupS} s warm-up; autocannon in this process, ${connectionCount} connections, ` +
  `pipelining ${pipelining}. Both servers preloaded with ${grouped(keyCount)} keys of ` +
  `${valueSize}-byte values; keys drawn at random per request, the same sequence for both. ` +
  `slabkv: \`slabkv serve ${serverArgs.join(' ')} --threads 1\`, 1 handler thread. ` +
  `hono-map: bench/peers/hono-map.ts (Hono, @hono/node-server, a Map). Latency from every ` +
  `response's time as autocannon measures it. CPU %: share of one core used by the server (all its ` +
  `threads), and by this process (the load generator), during the run; the machine's ` +
  `${os.cpus().length} cores are shared by both. µs/req: server CPU time per response.`

console.log(`${table}\n\n${threadedNote}\n\n${targets}\n\n${note}\n\n${benchDurationS} s`)

if (!dryRun) {
  const json = {
    config: {
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
    },
    servers: servers.map((s) => ({ name: s.name, listening: s.listening })),
    results: ratioRows.map((r, i) => ({
      scenario: r.scenario,
      opsPerRequest: results[i]!.opsPerRequest,
      ratio: r.ratio,
      ratioRunRange: r.ratioRunRange,
      systems: results[i]!.systems,
    })),
    threadedGetHitRatio: threadedRatio ?? null,
    durationS: benchDurationS,
  }
  writeResults('http', context, json, `${table}\n\n${threadedNote}\n\n${targets}\n\n${note}`)
}
