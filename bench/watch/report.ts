import { median, medianFigures } from '../measure.js'
import { renderTable } from '../report.js'
import type { DrainRun, LatencyRun, WritesRun } from './measure.js'

// bench:watch's tables: writes with 0…N watchers (and the target, 100 watchers ≥ 0.8× none),
// the delivery latency, and the history drain. Every figure is the median of the rounds; a
// round whose checks failed is reported with what failed, and its figures are still shown but
// the case is marked, because a watcher that fell behind makes the write rate meaningless.

export const targetRatio = 0.8

const int = (n: number) => Math.round(n).toLocaleString('en-US')
const ms = (n: number) => (Number.isNaN(n) ? '-' : n.toFixed(2))
const medianOf = (values: (number | null)[]) => {
  const known = values.filter((v) => v !== null)
  return known.length === 0 ? null : median(known)
}

export interface WritesCase {
  watcherCount: number
  runs: WritesRun[]
}

function problemsOf(runs: { problems: string[] }[]): string[] {
  return runs.flatMap((run, i) => run.problems.map((p) => `round ${i + 1}: ${p}`))
}

export function writesReport(
  cases: WritesCase[],
  verdict = true,
): {
  markdown: string
  json: object
  pass: boolean | null
} {
  const none = cases.find((c) => c.watcherCount === 0)
  const baseline = none === undefined ? Number.NaN : medianFigures(none.runs).requestsPerSecond
  const rows = [
    [
      'watchers',
      'PUT req/s',
      'ratio to none: of medians; per round, median (range)',
      'p50 / p99 ms',
      'server CPU µs/write',
      'server CPU',
      'watchers CPU',
      'wrk CPU',
      'events/s per watcher',
      'events per read',
      'catch-up ms',
      'records per group commit',
      'every event?',
    ],
  ]
  const json: object[] = []
  let pass: boolean | null = null
  for (const c of cases) {
    const f = medianFigures(c.runs)
    const ratios =
      none?.runs.map((r, i) => (c.runs[i]?.requestsPerSecond ?? 0) / r.requestsPerSecond) ?? []
    const ratio = f.requestsPerSecond / baseline
    const watcherCpu = medianOf(
      c.runs.map((r) => (r.watcherCpuS === null ? null : r.watcherCpuS / r.durationS)),
    )
    const live = medianOf(c.runs.map((r) => r.liveEventsPerSecond))
    const perRead = medianOf(c.runs.map((r) => r.eventsPerChunk ?? null))
    const catchUp = medianOf(c.runs.map((r) => r.catchUpMs))
    const perCommit = medianOf(c.runs.map((r) => r.recordsPerGroupCommit))
    const problems = problemsOf(c.runs)
    const checked = problems.length === 0 ? 'yes' : `NO (${problems.length})`
    rows.push([
      String(c.watcherCount),
      int(f.requestsPerSecond),
      `${ratio.toFixed(2)}×; ${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
      `${ms(f.latencyP50Ms)} / ${ms(f.latencyP99Ms)}`,
      f.serverCpuPerRequestUs === null ? '-' : int(f.serverCpuPerRequestUs),
      f.serverCpuPercent === null ? '-' : `${Math.round(f.serverCpuPercent)}%`,
      c.watcherCount === 0 || watcherCpu === null ? '-' : `${Math.round(watcherCpu * 100)}%`,
      `${Math.round(f.generatorCpuPercent)}%`,
      live === null ? '-' : int(live),
      perRead === null ? '-' : perRead.toFixed(1),
      catchUp === null ? '-' : int(catchUp),
      perCommit === null ? '-' : perCommit.toFixed(1),
      checked,
    ])
    // Both the ratio of the medians and the median of the paired, same-round ratios must
    // reach the target: a neighbour's load that drifts across the run moves them differently.
    if (c.watcherCount === 100)
      pass = ratio >= targetRatio && median(ratios) >= targetRatio && problems.length === 0
    json.push({
      ...c,
      figures: f,
      ratioToNone: ratio,
      ratioToNonePerRound: ratios,
      watcherCpuShare: watcherCpu,
      live,
      catchUp,
      problems,
    })
  }
  const problems = cases.flatMap((c) =>
    problemsOf(c.runs).map((p) => `${c.watcherCount} watchers, ${p}`),
  )
  const hundred = cases.find((c) => c.watcherCount === 100)
  const hundredRatios = hundred?.runs.map(
    (r, i) => r.requestsPerSecond / (none?.runs[i]?.requestsPerSecond ?? Number.NaN),
  )
  const target =
    hundred === undefined || none === undefined
      ? ''
      : `\n\n${verdict ? (pass ? 'PASS' : 'FAIL') : 'No verdict from fewer than 3 rounds'}: PUT with 100 watchers ÷ none: ` +
        `${(medianFigures(hundred.runs).requestsPerSecond / baseline).toFixed(2)}× (ratio of the medians), ` +
        `${median(hundredRatios!).toFixed(2)}× (median of the rounds' ratios), target ≥ ${targetRatio}× for both` +
        (problems.some((p) => p.startsWith('100 ')) ? ' (and its watchers failed the check)' : '') +
        cpuCost(none, hundred)
  const deltas = cases
    .filter((c) => c.runs.some((r) => Object.keys(r.watchDelta).length > 0))
    .map((c) => {
      const keys = Object.keys(c.runs[0]!.watchDelta)
      const parts = keys.map((k) => `${k} ${int(median(c.runs.map((r) => r.watchDelta[k] ?? 0)))}`)
      return `- ${c.watcherCount} watchers: ${parts.join(', ')}`
    })
  const markdown =
    renderTable(rows) +
    target +
    (problems.length === 0
      ? ''
      : `\n\nChecks that failed:\n\n${problems.map((p) => `- ${p}`).join('\n')}`) +
    (deltas.length === 0
      ? ''
      : `\n\nThe server's watch counters, change per round (median):\n\n${deltas.join('\n')}`)
  return { markdown, json, pass }
}

/**
 * What the watchers cost the server per write, from CPU time, which a neighbour's load moves far
 * less than req/s: the ratio, and the extra µs per event delivered to one watcher.
 */
function cpuCost(none: WritesCase, many: WritesCase): string {
  const base = medianFigures(none.runs).serverCpuPerRequestUs
  const cost = medianFigures(many.runs).serverCpuPerRequestUs
  if (base === null || cost === null) return ''
  const perEvent = (cost - base) / many.watcherCount
  return (
    `. Server CPU per write: ${int(base)} µs with none, ${int(cost)} µs with ${many.watcherCount} ` +
    `(${(cost / base).toFixed(2)}×; ${perEvent.toFixed(2)} µs more per event per watcher); were the ` +
    `server the only limit, req/s would scale by the inverse, ${(base / cost).toFixed(2)}×.`
  )
}

export function latencyReport(runs: LatencyRun[], rate: number, watcherCount: number) {
  const f = medianFigures(runs)
  const m = (pick: (r: LatencyRun) => number) => ms(median(runs.map(pick)))
  const rows = [
    ['from', 'p50 ms', 'p99 ms'],
    ['acknowledgement to event', m((r) => r.ackToEventP50Ms), m((r) => r.ackToEventP99Ms)],
    ['request sent to event', m((r) => r.sendToEventP50Ms), m((r) => r.sendToEventP99Ms)],
    ['request sent to acknowledgement', ms(f.latencyP50Ms), ms(f.latencyP99Ms)],
  ]
  const problems = problemsOf(runs)
  const late = median(runs.map((r) => r.lateWrites))
  const markdown =
    renderTable(rows) +
    `\n\n${int(f.requestsPerSecond)} writes/s paced (asked: ${int(rate)}/s${late > 0 ? `, ${int(late)} writes sent over 10 ms late` : ''}), ` +
    `${watcherCount} watchers; server CPU ${f.serverCpuPercent === null ? '-' : `${Math.round(f.serverCpuPercent)}%`}, ` +
    `the writer's and watchers' process ${Math.round(f.generatorCpuPercent)}%. Every (write, watcher) pair counts once.` +
    (problems.length === 0
      ? ''
      : `\n\nChecks that failed:\n\n${problems.map((p) => `- ${p}`).join('\n')}`)
  return { markdown, json: { figures: f, runs, problems } }
}

export function drainReport(runs: DrainRun[]) {
  const f = medianFigures(runs)
  const events = median(runs.map((r) => r.events))
  const firstBlock = median(runs.map((r) => r.firstBlockMs))
  const rows = [
    [
      'events',
      'events/s',
      'seconds',
      'first block ms',
      'server CPU µs/event',
      'server CPU',
      'watcher CPU',
    ],
    [
      int(events),
      int(f.requestsPerSecond),
      (events / f.requestsPerSecond).toFixed(2),
      ms(firstBlock),
      f.serverCpuPerRequestUs === null ? '-' : ms(f.serverCpuPerRequestUs),
      f.serverCpuPercent === null ? '-' : `${Math.round(f.serverCpuPercent)}%`,
      `${Math.round(f.generatorCpuPercent)}%`,
    ],
  ]
  const problems = problemsOf(runs)
  const markdown =
    renderTable(rows) +
    (problems.length === 0
      ? ''
      : `\n\nChecks that failed:\n\n${problems.map((p) => `- ${p}`).join('\n')}`)
  return { markdown, json: { figures: f, runs, problems } }
}
