// A sparkline: one series over a fixed time window, drawn as an SVG line over a filled area.
// Hand-written (about 60 lines) rather than a charting library: the dashboard needs nothing
// more, and every byte the page loads is served by this server. Colours come from style.css
// classes, since the Content-Security-Policy refuses inline styles.

const svgNamespace = 'http://www.w3.org/2000/svg'
// The drawing's own coordinates; the SVG stretches them to whatever size CSS gives the chart.
const width = 300
const height = 60
// Room for the line's stroke at the top and bottom edges.
const padding = 2

/**
 * @typedef {object} Point
 * @property {number} timeMs
 * @property {number | null} value null leaves a gap (no reads in that interval, say)
 */

/**
 * Creates an empty chart: an <svg role="img"> whose label drawSparkline keeps up to date.
 * @returns {SVGSVGElement}
 */
export function createSparkline() {
  const svg = document.createElementNS(svgNamespace, 'svg')
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
  // The time axis stretches to the card's width while the line keeps its stroke width.
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('role', 'img')
  svg.classList.add('spark')
  for (const className of ['spark-area', 'spark-line']) {
    const path = document.createElementNS(svgNamespace, 'path')
    path.classList.add(className)
    path.setAttribute('vector-effect', 'non-scaling-stroke')
    svg.append(path)
  }
  return svg
}

/**
 * Redraws the chart with the points inside [startMs, endMs], on a vertical scale from 0 to the
 * larger of `scaleMin` and the highest value shown.
 * @param {SVGSVGElement} svg from createSparkline()
 * @param {Point[]} points oldest first
 * @param {{ startMs: number, endMs: number, scaleMin: number, label: string }} options
 * @returns {number} the highest value shown (0 when there is none)
 */
export function drawSparkline(svg, points, { startMs, endMs, scaleMin, label }) {
  const spanMs = Math.max(1, endMs - startMs)
  const shown = points.filter((point) => point.timeMs >= startMs)
  let peak = 0
  for (const point of shown) if (point.value !== null && point.value > peak) peak = point.value
  const scale = Math.max(peak, scaleMin)
  const x = (/** @type {number} */ timeMs) => ((timeMs - startMs) / spanMs) * width
  const y = (/** @type {number} */ value) =>
    height - padding - (value / scale) * (height - 2 * padding)

  // Each run of points without a gap is one segment of line and one closed shape of area.
  let line = ''
  let area = ''
  /** @type {{ x: number, y: number }[]} */
  let run = []
  const closeRun = () => {
    const first = run[0]
    const last = run.at(-1)
    if (first !== undefined && last !== undefined) {
      const through = run.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' L')
      line += `M${through} `
      area += `M${first.x.toFixed(1)},${height} L${through} L${last.x.toFixed(1)},${height} Z `
    }
    run = []
  }
  for (const point of shown) {
    if (point.value === null) closeRun()
    else run.push({ x: x(point.timeMs), y: y(point.value) })
  }
  closeRun()
  const [areaPath, linePath] = svg.children
  areaPath?.setAttribute('d', area.trim())
  linePath?.setAttribute('d', line.trim())
  svg.setAttribute('aria-label', label)
  return peak
}
