import { type Figures, type Measurement, medianFigures, type Run } from '../measure.js'
import { renderTable } from '../report.js'
import type { Family } from '../systems.js'
import type { Scenario } from './scenarios.js'

// From measurements to what the report shows: the median of the runs of each system in each
// scenario, the ratios to each peer, and the targets of issue 6 as ratios in the run.
//
// Wrong answers are never counted: throughput is correct answers per second. A few are still
// reported beside the figure, with the first one: webdis answers a new client, now and then,
// with a Redis reply meant for a client that has gone away (wrk closes its connections with
// requests in flight at the end of every run; the webdis maintainer describes the missing
// tracking in nicolasff/webdis#212). More than wrongShareMax of the answers wrong, a socket
// error, or a failed run: no figure at all, and the report says why.

export type { Run }

export interface SystemRef {
  id: string
  label: string
  family: Family
  durable: boolean
}

/** Above this share of wrong answers a system has no figure in a scenario. */
const wrongShareMax = 0.01

export interface Summary extends Figures {
  scenario: Pick<Scenario, 'id' | 'title' | 'generator' | 'opsPerRequest'>
  system: SystemRef
  runs: Run[]
  /** Why this system has no figure in this scenario; null when every run answered correctly. */
  failure: string | null
  /** Wrong answers in all runs (excluded from the figures), and the first one. */
  wrongCount: number
  wrongSample: string
  opsPerSecond: number
}

function failureOf(runs: Run[]): string | null {
  const reasons: string[] = []
  for (const run of runs) {
    if (run.error !== undefined) reasons.push(run.error)
    else if (run.socketErrorCount > 0) reasons.push(`${run.socketErrorCount} socket errors`)
    else if (run.badCount > run.requests * wrongShareMax) {
      reasons.push(`${run.badCount} of ${run.requests} answers wrong, first: ${run.badSample}`)
    }
  }
  return reasons.length === 0 ? null : reasons.join('; ')
}

export function summarize(scenario: Scenario, system: SystemRef, runs: Run[]): Summary {
  const measured = runs.filter((run): run is Measurement => run.error === undefined)
  const figures = medianFigures(measured)
  return {
    scenario: {
      id: scenario.id,
      title: scenario.title,
      generator: scenario.generator,
      opsPerRequest: scenario.opsPerRequest,
    },
    system,
    runs,
    failure: failureOf(runs),
    wrongCount: measured.reduce((sum, run) => sum + run.badCount, 0),
    wrongSample: measured.find((run) => run.badCount > 0)?.badSample ?? '',
    ...figures,
    opsPerSecond: figures.requestsPerSecond * scenario.opsPerRequest,
  }
}

export interface Target {
  title: string
  scenarioId: string
  systemId: string
  peerId: string
  ratioMin: number
}

export interface TargetResult extends Target {
  /** Ratio of the medians; null when either side has no figure. */
  ratio: number | null
  /** Ratios of the runs of the same round, lowest and highest. */
  roundRatioRange: [number, number] | null
  verdict: 'pass' | 'fail' | 'not measured'
}

export function evaluate(target: Target, summaries: Summary[]): TargetResult {
  const find = (id: string) =>
    summaries.find((s) => s.scenario.id === target.scenarioId && s.system.id === id)
  const system = find(target.systemId)
  const peer = find(target.peerId)
  if (system === undefined || peer === undefined || system.failure || peer.failure) {
    return { ...target, ratio: null, roundRatioRange: null, verdict: 'not measured' }
  }
  const ratio = system.requestsPerSecond / peer.requestsPerSecond
  const roundRatios = system.runs.flatMap((run, round) => {
    const other = peer.runs[round]
    return run.error === undefined && other !== undefined && other.error === undefined
      ? [run.requestsPerSecond / other.requestsPerSecond]
      : []
  })
  return {
    ...target,
    ratio,
    roundRatioRange: [Math.min(...roundRatios), Math.max(...roundRatios)],
    verdict: ratio >= target.ratioMin ? 'pass' : 'fail',
  }
}

const thousands = (n: number) =>
  n >= 100_000
    ? `${Math.round(n / 1000)}k`
    : n >= 1000
      ? `${(n / 1000).toFixed(1)}k`
      : `${Math.round(n)}`

/** "45.3k req/s", or ops/s for batches; short enough for a chart label. */
export function rateLabel(summary: Summary): string {
  return summary.scenario.opsPerRequest === 1
    ? thousands(summary.requestsPerSecond)
    : `${thousands(summary.opsPerSecond)} ops`
}

/**
 * Text safe inside a Markdown table row or list item: one line, no pipes, bounded, and no space
 * at either end (a wrong answer's empty body left one, which the Markdown lint refuses).
 */
const cell = (text: string) =>
  text.replaceAll(/\s+/g, ' ').replaceAll('|', '\\|').slice(0, 200).trim()

/** One table per scenario: every system, its figures, and its ratio to each peer. */
export function markdownTables(summaries: Summary[], peers: SystemRef[]): string {
  const scenarioIds = [...new Set(summaries.map((s) => s.scenario.id))]
  const grouped = (n: number) => Math.round(n).toLocaleString('en-US')
  return scenarioIds
    .map((id) => {
      const rows = summaries.filter((s) => s.scenario.id === id)
      const { title, generator, opsPerRequest } = rows[0]!.scenario
      const byId = new Map(rows.map((s) => [s.system.id, s]))
      const header = [
        'system',
        opsPerRequest === 1 ? 'req/s' : `req/s (ops/s)`,
        'p50 / p99 ms',
        'server CPU µs/req',
        'server CPU %',
        `${generator} CPU %`,
        ...peers.map((peer) => `÷ ${peer.label}`),
      ]
      const notes: string[] = []
      const body = rows.map((s) => {
        if (s.failure !== null) {
          notes.push(`${notes.length + 1}. ${s.system.label}: ${cell(s.failure)}`)
          return [s.system.label, `no figure (${notes.length})`, ...header.slice(2).map(() => '')]
        }
        let flag = ''
        if (s.wrongCount > 0) {
          notes.push(
            `${notes.length + 1}. ${s.system.label}: ${s.wrongCount} wrong answers, not counted; the first: ${cell(s.wrongSample)}`,
          )
          flag = ` (${notes.length})`
        }
        return [
          s.system.label,
          (opsPerRequest === 1
            ? grouped(s.requestsPerSecond)
            : `${grouped(s.requestsPerSecond)} (${grouped(s.opsPerSecond)})`) + flag,
          `${s.latencyP50Ms.toFixed(2)} / ${s.latencyP99Ms.toFixed(2)}`,
          s.serverCpuPerRequestUs === null ? '?' : grouped(s.serverCpuPerRequestUs),
          s.serverCpuPercent === null ? '?' : grouped(s.serverCpuPercent),
          grouped(s.generatorCpuPercent),
          ...peers.map((peer) => {
            const other = byId.get(peer.id)
            return other === undefined || other.failure !== null
              ? '–'
              : `${(s.requestsPerSecond / other.requestsPerSecond).toFixed(2)}×`
          }),
        ]
      })
      const table = renderTable([header, ...body])
      return `**${title}** (${generator})\n\n${table}${notes.length > 0 ? `\n\n${notes.join('\n')}` : ''}`
    })
    .join('\n\n')
}

export function targetLines(results: TargetResult[]): string {
  return results
    .map((t) => {
      const measured =
        t.ratio === null
          ? 'not measured'
          : `${t.ratio.toFixed(2)}× (rounds ${t.roundRatioRange![0].toFixed(2)}–${t.roundRatioRange![1].toFixed(2)})`
      return `- ${t.verdict.toUpperCase()}: ${t.title}: ${measured}, target ≥ ${t.ratioMin.toFixed(1)}×`
    })
    .join('\n')
}
