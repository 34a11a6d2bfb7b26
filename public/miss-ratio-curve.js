import { element } from './dom.js'
import { formatBytes, formatCount } from './format.js'

// "Hit ratio by memory": the miss-ratio curve of GET /v1/stats (docs/api.md, "The miss-ratio
// curve") as one dashboard card. The server estimates the hit ratio its reads would have had at
// 25 sizes of --max-memory, a quarter of an octave apart from 1/8× to 8×; the card draws them
// (memory on a log scale across, hit ratio 0 to 1 up, the current size marked) and says in one
// sentence what twice the memory would buy. Hand-written SVG, as sparkline.js; the drawing's
// text alternative names the main points, and a table under it holds all of them.

const svgNamespace = 'http://www.w3.org/2000/svg'
const width = 300
const height = 100
const padding = 3
/** The multiple of the current size the sentence names. */
const askedMultiple = 2
/** The points the drawing's text alternative names, as multiples of the current size. */
const namedMultiples = [1 / 8, 1 / 2, 1, 2, 8]
/** A curve missing this long after a start is taken for one that is off, not warming up. */
const warmUpSeconds = 3

/**
 * GET /v1/stats's missRatioCurve (src/http/routes/ops.ts).
 * @typedef {object} Curve
 * @property {{ memorySize: number, hitRatio: number }[]} points smallest size first
 * @property {number} sampledKeyCount
 * @property {number} accessCount
 * @property {number} [droppedCount]
 * @property {number} since milliseconds since the epoch
 */

/** A hit ratio as the sentence and the table show it: two decimals, as 0.93. */
export const formatRatio = (/** @type {number} */ ratio) => ratio.toFixed(2)

/**
 * A multiple of the current size: 1/8×, 1/2×, 1×, 2×, 8× for whole octaves, else 1.19×.
 * @param {number} multiple
 */
export function formatMultiple(multiple) {
  const octaves = Math.log2(multiple)
  if (Math.abs(octaves - Math.round(octaves)) < 1e-9) {
    return octaves < 0 ? `1/${2 ** -Math.round(octaves)}×` : `${2 ** Math.round(octaves)}×`
  }
  return `${multiple.toFixed(2)}×`
}

/**
 * The point nearest a multiple of the current size (on the log scale the curve is spaced on).
 * @template {{ memorySize: number }} P
 * @param {P[]} points
 * @param {number} current bytes, --max-memory
 * @param {number} multiple
 * @returns {P | undefined}
 */
function pointAt(points, current, multiple) {
  let best
  let bestDistance = Number.POSITIVE_INFINITY
  for (const point of points) {
    const distance = Math.abs(Math.log2(point.memorySize / (current * multiple)))
    if (distance < bestDistance) [best, bestDistance] = [point, distance]
  }
  return best
}

const svgChild = (/** @type {string} */ tag, /** @type {string} */ className) => {
  const child = document.createElementNS(svgNamespace, tag)
  child.classList.add(className)
  child.setAttribute('vector-effect', 'non-scaling-stroke')
  return child
}

/**
 * The card, empty: update() fills it from each sample of /v1/stats.
 * @returns {{ card: HTMLElement, update: (stats: { bytesMax: number, uptimeSeconds: number, missRatioCurve: Curve | null }) => void }}
 */
export function createCurveCard() {
  const titleId = 'metric-miss-ratio-curve-title'
  const sentence = element('p', { className: 'curve-sentence', textContent: '—' })
  const detail = element('p', { className: 'metric-detail' })
  const svg = document.createElementNS(svgNamespace, 'svg')
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('role', 'img')
  svg.classList.add('curve-chart')
  const grid = svgChild('path', 'curve-grid')
  const area = svgChild('path', 'spark-area')
  const line = svgChild('path', 'spark-line')
  const marker = svgChild('path', 'curve-marker')
  const dot = svgChild('path', 'curve-dot')
  svg.append(grid, area, line, marker, dot)
  const axis = [0, 1, 2].map(() => element('span'))
  const axisRow = element('p', { className: 'curve-axis', ariaHidden: 'true' }, axis)
  const rows = element('tbody')
  const table = element('table', { className: 'curve-table' }, [
    element('caption', { className: 'visually-hidden', textContent: 'Hit ratio by memory' }),
    element('thead', {}, [
      element('tr', {}, [
        element('th', { scope: 'col', textContent: 'memory' }),
        element('th', { scope: 'col', textContent: 'of now' }),
        element('th', { scope: 'col', textContent: 'hit ratio' }),
      ]),
    ]),
    rows,
  ])
  const points = element('details', { className: 'curve-points' }, [
    element('summary', { textContent: 'Every point' }),
    table,
  ])
  const drawing = element('div', { className: 'curve-drawing' }, [svg, axisRow, points])
  const card = element('section', { className: 'metric curve' }, [
    element('h3', { id: titleId, textContent: 'Hit ratio by memory' }),
    sentence,
    detail,
    drawing,
  ])
  card.dataset.metric = 'miss-ratio-curve'
  card.setAttribute('aria-labelledby', titleId)
  /** The table is rebuilt only when the curve changes (it is published once a second). */
  let shownKey = ''

  /** @param {{ bytesMax: number, uptimeSeconds: number, missRatioCurve: Curve | null }} stats */
  const update = ({ bytesMax, uptimeSeconds, missRatioCurve: curve }) => {
    if (curve === null || curve.points.length < 2 || curve.accessCount === 0) {
      card.dataset.state = curve === null ? 'off' : 'empty'
      drawing.hidden = true
      shownKey = ''
      if (curve !== null) {
        sentence.textContent = 'No reads yet: the curve starts with the first read.'
        detail.textContent = `since ${new Date(curve.since).toLocaleTimeString('en-GB')}`
      } else if (uptimeSeconds < warmUpSeconds) {
        sentence.textContent = 'Warming up: the first curve comes a second after the start.'
        detail.textContent = ''
      } else {
        sentence.replaceChildren(
          'Off. Start the server with ',
          element('code', { textContent: '--miss-ratio-curve on' }),
          ' to see what more or less memory would do to the hit ratio.',
        )
        detail.textContent = ''
      }
      return
    }
    card.dataset.state = ''
    drawing.hidden = false
    const now = pointAt(curve.points, bytesMax, 1)
    const asked = pointAt(curve.points, bytesMax, askedMultiple)
    if (now === undefined || asked === undefined) return
    const multipleOf = (/** @type {number} */ size) => formatMultiple(size / bytesMax)
    sentence.textContent =
      `With ${multipleOf(asked.memorySize)} memory (${formatBytes(asked.memorySize)}), ` +
      `hit ratio ${formatRatio(asked.hitRatio)} (now ${formatRatio(now.hitRatio)})`
    const dropped = curve.droppedCount ?? 0
    detail.textContent =
      `estimated from ${formatCount(curve.sampledKeyCount)} sampled keys and ` +
      `${formatCount(curve.accessCount)} reads since ` +
      `${new Date(curve.since).toLocaleTimeString('en-GB')}` +
      (dropped > 0 ? ` · ${formatCount(dropped)} sampled accesses dropped` : '')

    const first = /** @type {{ memorySize: number }} */ (curve.points[0])
    const last = /** @type {{ memorySize: number }} */ (curve.points.at(-1))
    const span = Math.max(1e-9, Math.log2(last.memorySize / first.memorySize))
    const x = (/** @type {number} */ size) => (Math.log2(size / first.memorySize) / span) * width
    const y = (/** @type {number} */ ratio) => height - padding - ratio * (height - 2 * padding)
    const at = (/** @type {{ memorySize: number, hitRatio: number }} */ point) =>
      `${x(point.memorySize).toFixed(1)},${y(point.hitRatio).toFixed(1)}`
    const through = curve.points.map(at).join(' L')
    line.setAttribute('d', `M${through}`)
    area.setAttribute('d', `M0,${height} L${through} L${width},${height} Z`)
    grid.setAttribute('d', [0.5, 1].map((r) => `M0,${y(r)} L${width},${y(r)}`).join(' '))
    const nowX = x(now.memorySize).toFixed(1)
    marker.setAttribute('d', `M${nowX},0 L${nowX},${height}`)
    // A zero-length stroke with round caps: a dot that stays round however the chart stretches.
    dot.setAttribute('d', `M${at(now)} l0,0`)
    const named = namedMultiples
      .map((multiple) => pointAt(curve.points, bytesMax, multiple))
      .filter((point) => point !== undefined)
      .map(
        (point) =>
          `${formatRatio(point.hitRatio)} at ${formatBytes(point.memorySize)} ` +
          `(${point === now ? 'now' : multipleOf(point.memorySize)})`,
      )
    svg.setAttribute('aria-label', `Hit ratio by memory: ${named.join(', ')}`)
    const [low, middle, high] = axis
    if (low) low.textContent = `${formatBytes(first.memorySize)} (${multipleOf(first.memorySize)})`
    if (middle) middle.textContent = `${formatBytes(now.memorySize)}, now`
    if (high) high.textContent = `${formatBytes(last.memorySize)} (${multipleOf(last.memorySize)})`

    const key = JSON.stringify([bytesMax, curve.points])
    if (key === shownKey) return
    shownKey = key
    rows.replaceChildren(
      ...curve.points.map((point) => {
        const row = element('tr', {}, [
          element('td', { textContent: formatBytes(point.memorySize) }),
          element('td', { textContent: multipleOf(point.memorySize) }),
          element('td', { textContent: formatRatio(point.hitRatio) }),
        ])
        if (point === now) row.dataset.now = 'true'
        return row
      }),
    )
  }
  return { card, update }
}
