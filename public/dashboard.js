import { requestJson } from './api.js'
import { byId, element } from './dom.js'
import {
  describeError,
  formatBytes,
  formatCount,
  formatDecimal,
  formatDuration,
  formatPercent,
} from './format.js'
import { createCurveCard } from './miss-ratio-curve.js'
import { createSparkline, drawSparkline } from './sparkline.js'

// The live dashboard: GET /v1/stats every second, kept for the last five minutes, shown as one
// card per metric with its number and a sparkline. Rates (operations, evictions and expirations
// per second, the hit ratio and the group-commit size of the last interval) are computed here
// from the differences between two samples of the server's counters, which all handler threads
// share: so they are exact whichever thread answers, and cover exactly the interval charted.
// The gauges of the two limits (entries, memory) read normal, warning from 80% and critical from
// 95%, in colour and in words; and while the store evicts, a notice above the cards says how
// much, and which flag to raise: a full store otherwise loses keys without a sign.

const pollIntervalMs = 1000
const windowMs = 5 * 60 * 1000
/** A longer interval between samples (a hidden tab, a server away) shows as a gap in the rates. */
const intervalMaxMs = 5 * pollIntervalMs
/** Where a gauge turns from normal to warning, and from warning to critical (0..1). */
const gaugeWarning = 0.8
const gaugeCritical = 0.95

/**
 * The fields of GET /v1/stats the dashboard reads (src/http/routes/ops.ts).
 * @typedef {object} Stats
 * @property {number} entries
 * @property {number} entriesMax
 * @property {number} bytes
 * @property {number} bytesMax
 * @property {number} hits
 * @property {number} misses
 * @property {number} hitRatio
 * @property {number} sets
 * @property {number} deletes
 * @property {number} evictions
 * @property {number} expirations
 * @property {number} opsPerSecond
 * @property {number} uptimeSeconds
 * @property {number} threads
 * @property {number} sequence
 * @property {{ fsync: string | null, state: string, durableLag: number, groupCommits: number,
 *   recordsWritten: number, recordsPerGroupCommit: number }} wal
 * @property {import('./miss-ratio-curve.js').Curve | null} missRatioCurve
 */

/**
 * What happened between the previous sample and this one, per second where it is a rate.
 * Null when it cannot be known: the first sample, a restart (counters went back), no reads
 * (hit ratio) or no group commit (group-commit size) in the interval.
 * @typedef {object} Interval
 * @property {number | null} opsPerSecond
 * @property {number | null} hitRatio
 * @property {number | null} evictionsPerSecond
 * @property {number | null} expirationsPerSecond
 * @property {number | null} recordsPerCommit
 */

/** @typedef {{ timeMs: number, stats: Stats, interval: Interval }} Sample */

/**
 * The window charted: how long it spans, as text, and what it counts.
 * @typedef {{ span: string, evictions: number }} Window
 */

/**
 * One card: what it charts, its headline and the line under it.
 * @typedef {object} Metric
 * @property {string} name the card's data-metric, which tests select by
 * @property {string} title
 * @property {(sample: Sample) => number | null} chart the value charted
 * @property {(sample: Sample) => string} headline
 * @property {(sample: Sample, window: Window) => string} detail
 * @property {(peak: number) => string} peak how the highest charted value reads
 * @property {number} scaleMin the chart's vertical scale never shrinks below this
 * @property {(stats: Stats) => number} [meter] a 0..1 gauge under the headline, of a limit
 */

/**
 * How full a gauge is, in the words its card shows beside the colour: the level names the
 * card's data-level, the text is added to its detail line.
 * @param {number} ratio 0..1
 * @returns {{ level: 'normal' | 'warning' | 'critical', text: string }}
 */
function gaugeLevel(ratio) {
  if (ratio >= gaugeCritical) return { level: 'critical', text: 'full' }
  if (ratio >= gaugeWarning) return { level: 'warning', text: 'nearly full' }
  return { level: 'normal', text: '' }
}

/** Appends the gauge's words, when it has any, to a detail line. */
const withLevel = (/** @type {string} */ detail, /** @type {number} */ ratio) => {
  const { text } = gaugeLevel(ratio)
  return text === '' ? detail : `${detail} · ${text}`
}

const perSecond = (/** @type {number | null} */ rate) =>
  rate === null ? '—' : `${formatCount(Math.round(rate))}/s`

/** @type {Metric[]} */
const metrics = [
  {
    name: 'entries',
    title: 'Entries',
    chart: ({ stats }) => stats.entries,
    headline: ({ stats }) => formatCount(stats.entries),
    detail: ({ stats }) =>
      withLevel(`of ${formatCount(stats.entriesMax)} at most`, stats.entries / stats.entriesMax),
    peak: formatCount,
    scaleMin: 1,
    meter: (stats) => stats.entries / stats.entriesMax,
  },
  {
    name: 'memory',
    title: 'Memory used',
    chart: ({ stats }) => stats.bytes,
    headline: ({ stats }) => formatBytes(stats.bytes),
    detail: ({ stats }) =>
      withLevel(
        `of ${formatBytes(stats.bytesMax)} (${formatPercent(stats.bytes / stats.bytesMax)})`,
        stats.bytes / stats.bytesMax,
      ),
    peak: formatBytes,
    scaleMin: 1024,
    meter: (stats) => stats.bytes / stats.bytesMax,
  },
  // Third, beside the limits that cause them: evictions are keys lost.
  {
    name: 'evictions',
    title: 'Evictions',
    chart: ({ interval }) => interval.evictionsPerSecond,
    headline: ({ stats }) => formatCount(stats.evictions),
    detail: ({ interval }, { span, evictions }) =>
      `${perSecond(interval.evictionsPerSecond)} now · ${formatCount(evictions)} in the last ${span}`,
    peak: (peak) => perSecond(peak),
    scaleMin: 1,
  },
  {
    name: 'hit-ratio',
    title: 'Hit ratio',
    chart: ({ interval }) => interval.hitRatio,
    headline: ({ interval }) =>
      interval.hitRatio === null ? 'no reads' : formatPercent(interval.hitRatio),
    detail: ({ stats }) =>
      `all time ${formatPercent(stats.hitRatio)}: ${formatCount(stats.hits)} hits, ` +
      `${formatCount(stats.misses)} misses`,
    peak: formatPercent,
    scaleMin: 1,
  },
  {
    name: 'ops',
    title: 'Operations',
    chart: ({ interval }) => interval.opsPerSecond,
    headline: ({ interval, stats }) => perSecond(interval.opsPerSecond ?? stats.opsPerSecond),
    detail: ({ stats }) =>
      `${formatCount(stats.hits + stats.misses)} gets, ${formatCount(stats.sets)} sets, ` +
      `${formatCount(stats.deletes)} deletes`,
    peak: (peak) => perSecond(peak),
    scaleMin: 1,
  },
  {
    name: 'expirations',
    title: 'Expirations',
    chart: ({ interval }) => interval.expirationsPerSecond,
    headline: ({ stats }) => formatCount(stats.expirations),
    detail: ({ interval }) => `${perSecond(interval.expirationsPerSecond)} now, past their TTL`,
    peak: (peak) => perSecond(peak),
    scaleMin: 1,
  },
  {
    name: 'durable-lag',
    title: 'WAL durable lag',
    chart: ({ stats }) => stats.wal.durableLag,
    headline: ({ stats }) => `${formatCount(stats.wal.durableLag)} records`,
    detail: ({ stats }) =>
      `not yet synced · fsync ${stats.wal.fsync ?? 'off'} · ${stats.wal.state}`,
    peak: formatCount,
    scaleMin: 1,
  },
  {
    name: 'group-commit',
    title: 'Group commit',
    chart: ({ interval }) => interval.recordsPerCommit,
    headline: ({ interval }) =>
      interval.recordsPerCommit === null
        ? 'idle'
        : `${formatDecimal(interval.recordsPerCommit)} records`,
    detail: ({ stats }) =>
      `per fdatasync · ${formatDecimal(stats.wal.recordsPerGroupCommit)} on average over ` +
      `${formatCount(stats.wal.groupCommits)} commits`,
    peak: formatDecimal,
    scaleMin: 1,
  },
]

/**
 * @param {Sample | undefined} previous
 * @param {Stats} stats
 * @param {number} timeMs
 * @returns {Interval}
 */
function intervalBetween(previous, stats, timeMs) {
  const unknown = {
    opsPerSecond: null,
    hitRatio: null,
    evictionsPerSecond: null,
    expirationsPerSecond: null,
    recordsPerCommit: null,
  }
  if (previous === undefined) return unknown
  const before = previous.stats
  // A restarted server counts from zero again: its first interval is unknown, not negative.
  if (stats.uptimeSeconds < before.uptimeSeconds) return unknown
  const seconds = (timeMs - previous.timeMs) / 1000
  if (seconds <= 0 || seconds * 1000 > intervalMaxMs) return unknown
  const hits = stats.hits - before.hits
  const reads = hits + stats.misses - before.misses
  const operations = reads + stats.sets - before.sets + stats.deletes - before.deletes
  const commits = stats.wal.groupCommits - before.wal.groupCommits
  const records = stats.wal.recordsWritten - before.wal.recordsWritten
  return {
    opsPerSecond: operations / seconds,
    hitRatio: reads > 0 ? hits / reads : null,
    evictionsPerSecond: (stats.evictions - before.evictions) / seconds,
    expirationsPerSecond: (stats.expirations - before.expirations) / seconds,
    recordsPerCommit: commits > 0 ? records / commits : null,
  }
}

/**
 * Evictions between the samples, counter differences added up; a restart (counters went back)
 * counts from zero again.
 * @param {Sample[]} samples
 */
function evictionsAcross(samples) {
  let count = 0
  for (let index = 1; index < samples.length; index++) {
    const before = /** @type {Sample} */ (samples[index - 1]).stats
    const after = /** @type {Sample} */ (samples[index]).stats
    if (after.uptimeSeconds >= before.uptimeSeconds) {
      count += Math.max(0, after.evictions - before.evictions)
    } else count += after.evictions
  }
  return count
}

/**
 * What the notice above the cards says while the store evicts: how many, how fast, and the
 * flag to raise, the one whose limit is the fuller.
 * @param {Sample} latest
 * @param {Window} window
 * @returns {(Node | string)[]}
 */
function evictionNotice({ stats, interval }, { span, evictions }) {
  const byEntries = stats.entries / stats.entriesMax >= stats.bytes / stats.bytesMax
  const full = byEntries
    ? ['--max-entries', `${formatCount(stats.entriesMax)} entries`, '--max-memory']
    : ['--max-memory', formatBytes(stats.bytesMax), '--max-entries']
  return [
    element('strong', { textContent: 'Evicting keys to make room: ' }),
    `${formatCount(evictions)} in the last ${span}, ${perSecond(interval.evictionsPerSecond)} now. `,
    `The store is full at its ${full[0]} limit (${full[1]}): raise it, or ${full[2]}, to keep more keys.`,
  ]
}

/** @typedef {{ card: HTMLElement, headline: HTMLElement, detail: HTMLElement, chart: SVGSVGElement, caption: HTMLElement, meter: HTMLMeterElement | undefined }} Card */

/** @param {Metric} metric @returns {Card} */
function createCard(metric) {
  const headline = element('p', { className: 'metric-value', textContent: '—' })
  const detail = element('p', { className: 'metric-detail' })
  const chart = createSparkline()
  const caption = element('p', { className: 'metric-caption' })
  // low, high and optimum make the browser colour the bar by level (green, yellow, red).
  const meter =
    metric.meter === undefined
      ? undefined
      : element('meter', {
          min: 0,
          max: 1,
          low: gaugeWarning,
          high: gaugeCritical,
          optimum: 0,
          value: 0,
        })
  const titleId = `metric-${metric.name}-title`
  const card = element('section', { className: 'metric' }, [
    element('h3', { id: titleId, textContent: metric.title }),
    headline,
    ...(meter === undefined ? [] : [meter]),
    detail,
    chart,
    caption,
  ])
  card.dataset.metric = metric.name
  card.setAttribute('aria-labelledby', titleId)
  meter?.setAttribute('aria-labelledby', titleId)
  return { card, headline, detail, chart, caption, meter }
}

/**
 * Starts sampling. `onPoll` hears of every poll's outcome (the header shows the connection).
 * @param {{ onPoll: (error: unknown | undefined) => void }} options
 */
export function startDashboard({ onPoll }) {
  const grid = byId('metrics', HTMLElement)
  const facts = byId('server-facts', HTMLElement)
  const notice = byId('evictions-notice', HTMLElement)
  const cards = metrics.map((metric) => ({ metric, ...createCard(metric) }))
  // The curve, what more memory would buy, beside the hit ratio it predicts.
  const curve = createCurveCard()
  const shown = cards.map(({ card }) => card)
  shown.splice(metrics.findIndex(({ name }) => name === 'hit-ratio') + 1, 0, curve.card)
  grid.replaceChildren(...shown)
  /** @type {Sample[]} */
  let samples = []

  const render = (/** @type {Sample} */ latest) => {
    const { stats } = latest
    facts.textContent =
      `${stats.threads} handler thread${stats.threads === 1 ? '' : 's'} · ` +
      `up ${formatDuration(stats.uptimeSeconds)} · sequence ${formatCount(stats.sequence)} · ` +
      `updated ${new Date(latest.timeMs).toLocaleTimeString('en-GB')}`
    // The time axis spans the last five minutes once there are that many; until then, the
    // time since the first sample, so that a fresh page charts what it has across the width.
    const startMs = Math.max(latest.timeMs - windowMs, samples[0]?.timeMs ?? latest.timeMs)
    const span = formatDuration(Math.max(pollIntervalMs, latest.timeMs - startMs) / 1000)
    /** @type {Window} */
    const charted = { span, evictions: evictionsAcross(samples) }
    notice.hidden = charted.evictions === 0
    if (!notice.hidden) notice.replaceChildren(...evictionNotice(latest, charted))
    curve.update(stats)
    for (const { metric, headline, detail, chart, caption, meter, card } of cards) {
      headline.textContent = metric.headline(latest)
      detail.textContent = metric.detail(latest, charted)
      if (meter !== undefined && metric.meter !== undefined) {
        const ratio = metric.meter(stats)
        const { level, text } = gaugeLevel(ratio)
        meter.value = ratio
        // The level in words too, not in colour alone.
        meter.setAttribute('aria-valuetext', `${formatPercent(ratio)}${text && `, ${text}`}`)
        card.dataset.level = level
      }
      const points = samples.map((sample) => ({
        timeMs: sample.timeMs,
        value: metric.chart(sample),
      }))
      const peak = drawSparkline(chart, points, {
        startMs,
        endMs: latest.timeMs,
        scaleMin: metric.scaleMin,
        label: `${metric.title}: ${headline.textContent}, over the last ${span}`,
      })
      caption.textContent = `last ${span}, peak ${metric.peak(peak)}`
      const warn =
        (metric.name === 'durable-lag' && stats.wal.state !== 'ok') ||
        (metric.name === 'evictions' && charted.evictions > 0)
      card.dataset.state = warn ? 'warn' : ''
    }
  }

  const poll = async () => {
    // A hidden tab polls nothing (the rates show a gap for the time away).
    if (!document.hidden) {
      try {
        const stats = /** @type {Stats} */ (await requestJson('/v1/stats'))
        const timeMs = Date.now()
        const sample = { timeMs, stats, interval: intervalBetween(samples.at(-1), stats, timeMs) }
        samples = [...samples.filter((old) => old.timeMs >= timeMs - windowMs), sample]
        render(sample)
        onPoll(undefined)
      } catch (error) {
        onPoll(error)
        facts.textContent = `Stats unavailable: ${describeError(error)}`
      }
    }
    setTimeout(poll, pollIntervalMs)
  }
  void poll()
}
