import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'

// What every benchmark shares: the median it reports, the seeded generator that makes every run
// of a benchmark replay the same workload, the load benchmarks' common options, and what one
// measurement of a load benchmark records (whichever load generator ran it) and the medians
// reported of several.

/** The median; the mean of the two middle values for an even count; NaN for none. */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** mulberry32: a small seeded generator, so every run replays the same keys and requests. */
export function createRandom(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/**
 * The options every load benchmark takes (bench:http, bench:wal, bench:peers), for parseArgs:
 * measured runs per scenario and system, seconds of each, seconds of discarded warm-up load
 * before each, and client connections.
 */
export function loadOptions(warmupSDefault: number) {
  return {
    runs: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: String(warmupSDefault) },
    connections: { type: 'string', default: '32' },
    // Prints the report and writes nothing (for trying the benchmark itself).
    'dry-run': { type: 'boolean', default: false },
  } as const
}

export interface LoadSettings {
  /** Measurements per scenario per system; the figures reported are their medians. */
  runCount: number
  /** Seconds each measurement lasts. */
  durationS: number
  /** Seconds of load, discarded, before each measurement. */
  warmupS: number
  connectionCount: number
  /** Print the report, leave bench/RESULTS.md and bench/results/ alone. */
  dryRun: boolean
}

/** Parses and checks loadOptions' values; `runCountMin` 0 lets a benchmark run nothing but a profile. */
export function loadSettings(
  args: { runs: string; duration: string; warmup: string; connections: string; 'dry-run': boolean },
  runCountMin = 1,
): LoadSettings {
  const settings = {
    runCount: Number(args.runs),
    durationS: Number(args.duration),
    warmupS: Number(args.warmup),
    connectionCount: Number(args.connections),
    dryRun: args['dry-run'],
  }
  const { runCount, durationS, warmupS, connectionCount } = settings
  assert(
    Number.isSafeInteger(runCount) && runCount >= runCountMin,
    `--runs must be an integer ≥ ${runCountMin}`,
  )
  assert(Number.isSafeInteger(durationS) && durationS >= 1, '--duration must be whole seconds ≥ 1')
  assert(Number.isSafeInteger(warmupS) && warmupS >= 1, '--warmup must be whole seconds ≥ 1')
  assert(Number.isSafeInteger(connectionCount) && connectionCount >= 1, '--connections must be ≥ 1')
  return settings
}

/** utime + stime from a /proc/<pid>/stat line, in seconds (USER_HZ is 100 on Linux). */
export function statCpuS(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** utime and stime from a /proc/<pid>/stat line, apart, in seconds. */
export function statUserSystemS(stat: string): { userS: number; systemS: number } {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { userS: Number(fields[11]) / 100, systemS: Number(fields[12]) / 100 }
}

/**
 * What each thread of a slabkv process is: the WAL writer is the first worker thread started
 * (src/main.ts), the other worker threads serve HTTP, and "other" is V8's and libuv's own
 * (the compiler, the garbage collector's helpers, the thread pool).
 */
export type ThreadKind = 'handlers' | 'writer' | 'main' | 'other'
export const threadKinds: ThreadKind[] = ['handlers', 'writer', 'main', 'other']

/** Each thread of `pid`: its kind and CPU seconds so far. */
export function threadsOf(pid: number): Map<number, { kind: ThreadKind; cpuS: number }> {
  const tids = readdirSync(`/proc/${pid}/task`).map(Number)
  const comm = (tid: number) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
  const workers = tids.filter((tid) => comm(tid) === 'WorkerThread').sort((a, b) => a - b)
  const result = new Map<number, { kind: ThreadKind; cpuS: number }>()
  for (const tid of tids) {
    const kind: ThreadKind =
      tid === pid
        ? 'main'
        : tid === workers[0]
          ? 'writer'
          : workers.includes(tid)
            ? 'handlers'
            : 'other'
    result.set(tid, { kind, cpuS: statCpuS(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')) })
  }
  return result
}

/** CPU seconds so far of `pid`'s threads, summed by kind. */
export function cpuByThreadKind(pid: number): Record<ThreadKind, number> {
  const sums = { handlers: 0, writer: 0, main: 0, other: 0 }
  for (const { kind, cpuS } of threadsOf(pid).values()) sums[kind] += cpuS
  return sums
}

/**
 * CPU time the processes have used so far, all their threads, in seconds; undefined off Linux
 * or once one has gone.
 */
export function processesCpuS(pids: number[]): number | undefined {
  let total = 0
  for (const pid of pids) {
    try {
      total += statCpuS(readFileSync(`/proc/${pid}/stat`, 'utf8'))
    } catch {
      return undefined
    }
  }
  return total
}

/** What one measurement produced, whichever load generator ran it (bench/wrk.ts, bench/autocannon.ts). */
export interface Measurement {
  generator: 'wrk' | 'autocannon' | 'node:http'
  requests: number
  durationS: number
  /** Right answers per second: a wrong answer is never counted as throughput. */
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  /** Answers the scenario's check refused (status or body). */
  badCount: number
  /** The first of them: its status and the start of its body. */
  badSample: string
  /** Connection-level failures (connect, read, write, timeout). */
  socketErrorCount: number
  /** CPU time the load generator used during the run, all its threads, in seconds. */
  generatorCpuS: number
  /** CPU time the system's processes used during the run, all their threads, in seconds. */
  serverCpuS: number | null
}

/** What a load generator measures; measureLoad adds the server's side. */
export type Load = Omit<Measurement, 'serverCpuS'>

/** One measurement, or why it has none. */
export type Run = (Measurement & { error?: undefined }) | { error: string }

/**
 * Runs one load and adds the CPU time the system's processes (`pids`) used meanwhile, from
 * /proc/<pid>/stat: server CPU divided by requests answered is what a request costs the server,
 * which moves far less than req/s when a neighbour takes CPU from the machine.
 */
export async function measureLoad(pids: number[], load: () => Promise<Load>): Promise<Measurement> {
  const before = processesCpuS(pids)
  const measured = await load()
  const after = processesCpuS(pids)
  const serverCpuS = before === undefined || after === undefined ? null : after - before
  return { ...measured, serverCpuS }
}

/** For benchmarks where any wrong answer or socket error fails the run (bench:http, bench:wal). */
export function assertAllRight(run: Measurement, what: string): void {
  assert(
    run.badCount === 0 && run.socketErrorCount === 0,
    `${what}: ${run.badCount} wrong answers (the first: ${run.badSample}), ` +
      `${run.socketErrorCount} socket errors. Errors are never counted as throughput.`,
  )
  assert(run.requests > 0, `${what}: no answers`)
}

/** The figures reported for several measurements of one system in one scenario: medians. */
export interface Figures {
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  /** Server CPU time per request, in µs, all the system's processes and threads. */
  serverCpuPerRequestUs: number | null
  /** Share of one core used by the system, and by the load generator, in percent. */
  serverCpuPercent: number | null
  generatorCpuPercent: number
}

export function medianFigures(runs: Measurement[]): Figures {
  const cpu = runs.filter((run) => run.serverCpuS !== null)
  return {
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    latencyP50Ms: median(runs.map((r) => r.latencyP50Ms)),
    latencyP99Ms: median(runs.map((r) => r.latencyP99Ms)),
    serverCpuPerRequestUs:
      cpu.length === 0 ? null : median(cpu.map((r) => (r.serverCpuS! * 1e6) / r.requests)),
    serverCpuPercent:
      cpu.length === 0 ? null : median(cpu.map((r) => (r.serverCpuS! / r.durationS) * 100)),
    generatorCpuPercent: median(runs.map((r) => (r.generatorCpuS / r.durationS) * 100)),
  }
}
