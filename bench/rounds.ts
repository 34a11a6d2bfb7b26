import type { Run } from './measure.js'
import type { RunningSystem } from './systems.js'

// How every load benchmark runs its measurements: scenario by scenario, each system first loaded
// for the warm-up (fresh connections, the JIT, the caches; the figures discarded), then the
// rounds, every round measuring the systems in the same order (A B C, A B C, …), so a noisy
// neighbour or a change of CPU frequency lands on all of them. The report gives the median of
// the rounds (measure.ts: medianFigures). Each measurement is logged as it ends, with how much
// of the whole is done and about how long the rest will take.

export interface RoundsPlan<Scenario extends { title: string }, R extends Run> {
  scenarios: Scenario[]
  /** The systems measured in a scenario, in the order of every round. */
  systemsIn(scenario: Scenario): RunningSystem[]
  runCount: number
  warmupS: number
  durationS: number
  /** One measurement of `seconds`; may throw, which ends the benchmark. */
  measure(system: RunningSystem, scenario: Scenario, seconds: number): Promise<R>
  /** More words for a measurement's log line. */
  note?(run: R): string
}

/** The measurements of each system in each scenario, in round order. */
export type Rounds<Scenario, R> = Map<Scenario, Map<RunningSystem, R[]>>

export async function runRounds<Scenario extends { title: string }, R extends Run>(
  plan: RoundsPlan<Scenario, R>,
): Promise<Rounds<Scenario, R>> {
  const { scenarios, runCount, warmupS, durationS } = plan
  const plannedS = scenarios.reduce(
    (sum, scenario) => sum + plan.systemsIn(scenario).length * (warmupS + runCount * durationS),
    0,
  )
  let doneS = 0
  const start = Date.now()
  const progress = (seconds: number, what: string) => {
    doneS += seconds
    const leftS = ((Date.now() - start) / 1000 / doneS) * (plannedS - doneS)
    const percent = Math.round((doneS / plannedS) * 100)
    process.stderr.write(`[${percent}%, ~${Math.ceil(leftS / 60)} min left] ${what}\n`)
  }
  const rounds: Rounds<Scenario, R> = new Map()
  for (const scenario of scenarios) {
    const systems = plan.systemsIn(scenario)
    const runs = new Map(systems.map((system) => [system, [] as R[]]))
    rounds.set(scenario, runs)
    for (const system of systems) {
      await plan.measure(system, scenario, warmupS)
      progress(warmupS, `${scenario.title}, ${system.spec.label}: warmed up`)
    }
    for (let round = 0; round < runCount; round++) {
      for (const system of systems) {
        const run = await plan.measure(system, scenario, durationS)
        runs.get(system)!.push(run)
        const note = plan.note === undefined ? '' : `, ${plan.note(run)}`
        progress(
          durationS,
          `round ${round + 1}/${runCount} ${scenario.title}, ${system.spec.label}: ${describeRun(run)}${note}`,
        )
      }
    }
  }
  return rounds
}

const percentOf = (seconds: number | null, durationS: number) =>
  seconds === null ? '?' : Math.round((seconds / durationS) * 100)

function describeRun(run: Run): string {
  if (run.error !== undefined) return `FAILED: ${run.error}`
  const cpuPerRequest =
    run.serverCpuS === null ? '?' : Math.round((run.serverCpuS * 1e6) / run.requests)
  return (
    `${Math.round(run.requestsPerSecond).toLocaleString('en-US')} req/s, ` +
    `p50 ${run.latencyP50Ms.toFixed(2)} ms, p99 ${run.latencyP99Ms.toFixed(2)} ms, ` +
    `server CPU ${percentOf(run.serverCpuS, run.durationS)}% (${cpuPerRequest} µs/req), ` +
    `${run.generator} CPU ${percentOf(run.generatorCpuS, run.durationS)}%` +
    (run.badCount + run.socketErrorCount > 0
      ? `, ${run.badCount} WRONG answers (${run.badSample}), ${run.socketErrorCount} socket errors`
      : '')
  )
}
