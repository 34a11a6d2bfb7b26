import type { Family } from '../systems.js'
import { rateLabel, type Summary } from './summary.js'

// The peers chart, hand-written SVG: one panel per scenario (their scales differ a hundredfold:
// a batch carries 100 operations), one horizontal bar per system, each panel scaled to its own
// fastest system. A family keeps its hue; its durable configuration is the darker shade. A
// system without a figure in a scenario (a wrong answer, a failed run) gets no bar, and says so.

const hues: Record<Family, [durable: string, volatile: string]> = {
  slabkv: ['#1f5fa8', '#86afe0'],
  redis: ['#b8322a', '#eb9a92'],
  fastify: ['#2e7d4f', '#2e7d4f'],
  hono: ['#c77700', '#c77700'],
}

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')

const columnCount = 3
const panelWidth = 480
const labelWidth = 270
const barHeight = 16
const barGap = 4
const panelTop = 24
const panelGap = 24
const titleHeight = 64

export function renderChart(summaries: Summary[], caption: string[]): string {
  const scenarioIds = [...new Set(summaries.map((s) => s.scenario.id))]
  const systemCount = Math.max(
    ...scenarioIds.map((id) => summaries.filter((s) => s.scenario.id === id).length),
  )
  const panelHeight = panelTop + systemCount * (barHeight + barGap)
  const rowCount = Math.ceil(scenarioIds.length / columnCount)
  const width = columnCount * panelWidth + (columnCount + 1) * panelGap
  const height = titleHeight + rowCount * (panelHeight + panelGap) + panelGap
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${panelGap}" y="24" font-size="16" font-weight="bold">${escapeXml(caption[0] ?? '')}</text>`,
    ...caption
      .slice(1)
      .map(
        (line, i) =>
          `<text x="${panelGap}" y="${42 + i * 15}" fill="#555555">${escapeXml(line)}</text>`,
      ),
  ]
  scenarioIds.forEach((id, index) => {
    const rows = summaries.filter((s) => s.scenario.id === id)
    const x = panelGap + (index % columnCount) * (panelWidth + panelGap)
    const y = titleHeight + panelGap + Math.floor(index / columnCount) * (panelHeight + panelGap)
    const first = rows[0]!.scenario
    const unit = first.opsPerRequest === 1 ? 'req/s' : 'ops/s'
    const best = Math.max(...rows.filter((s) => s.failure === null).map((s) => s.opsPerSecond), 1)
    const barMax = panelWidth - labelWidth - 56
    parts.push(
      `<text x="${x}" y="${y + 14}" font-weight="bold">${escapeXml(`${first.title} — ${unit}, ${first.generator}`)}</text>`,
    )
    rows.forEach((s, row) => {
      const top = y + panelTop + row * (barHeight + barGap)
      const [durable, volatile] = hues[s.system.family]
      parts.push(
        `<text x="${x + labelWidth - 6}" y="${top + 12}" text-anchor="end">${escapeXml(s.system.label)}</text>`,
      )
      if (s.failure !== null) {
        parts.push(
          `<text x="${x + labelWidth}" y="${top + 12}" fill="#b8322a">no figure: wrong or failed answers</text>`,
        )
        return
      }
      const barWidth = Math.max(1, (s.opsPerSecond / best) * barMax)
      parts.push(
        `<rect x="${x + labelWidth}" y="${top}" width="${barWidth.toFixed(1)}" height="${barHeight}" fill="${s.system.durable ? durable : volatile}"/>`,
        `<text x="${(x + labelWidth + barWidth + 4).toFixed(1)}" y="${top + 12}">${escapeXml(rateLabel(s))}</text>`,
      )
    })
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
