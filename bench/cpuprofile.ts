import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { renderTable, root } from './report.js'

// Where a server's CPU time goes, from the .cpuprofile files `node --cpu-prof` writes (one per
// thread: the main thread and each worker). Self time only: the time a function was on top of
// the stack, which is what a change to that function can save. Idle time is left out, so the
// shares are of the time the threads were busy. Two views: the top functions, and the same time
// by place (slabkv's own code, each npm package, Node's internals, the garbage collector).
//
// Idle is V8's (idle) frame. Waits are left out of the busy time too, and reported apart: a
// thread blocked in a call still shows that call on top of the stack. Atomics.wait blocks inside
// the function that calls it, so the WAL writer sleeping until a handler appends a record shows
// as waitForRecords; the writer waiting for the disk shows as fdatasync. (The store lock's
// Atomics.wait is left in the busy time: a handler waiting there is a request stalled.)
//
// A window (CLOCK_MONOTONIC µs, which is both process.hrtime and a profile's clock) keeps only
// the samples taken during a measurement, leaving out start-up, preloading and warm-up.
//
// Usage: node dist/bench/cpuprofile.js [--top N] <file.cpuprofile>...

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
}
interface Profile {
  nodes: ProfileNode[]
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/** CLOCK_MONOTONIC microseconds, as process.hrtime.bigint() / 1000n. */
export interface Window {
  startUs: number
  endUs: number
}

const waits = [
  { functionName: 'waitForRecords', urlEnd: '/wal/ring.js', what: 'the WAL writer sleeping' },
  { functionName: 'fdatasync', urlEnd: '', what: 'the WAL writer waiting for the disk' },
]
const waitOf = (frame: CallFrame) =>
  waits.find((w) => frame.functionName === w.functionName && frame.url.endsWith(w.urlEnd))

export interface SelfTime {
  name: string
  place: string
  selfMs: number
  /** Share of the busy (non-idle) time of every profile, in percent. */
  percent: number
}

/** slabkv's code, an npm package by name, Node's internals, or V8's own pseudo-frames. */
function placeOf(frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  if (url.startsWith('node:')) return 'node internals'
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (packageMatch) return packageMatch[1]!
  if (url.includes('/dist/src/') || url.includes('/dist/workers/')) return 'slabkv'
  return 'other'
}

function location(frame: CallFrame): string {
  const rootUrl = `file://${root}`
  const url = frame.url.startsWith(rootUrl) ? frame.url.slice(rootUrl.length) : frame.url
  return url === '' ? '' : `${url}:${frame.lineNumber + 1}`
}

export function selfTimes(
  paths: string[],
  window?: Window,
): { functions: SelfTime[]; places: SelfTime[]; waits: { what: string; ms: number }[] } {
  const byFunction = new Map<string, { name: string; place: string; us: number }>()
  const byPlace = new Map<string, number>()
  const byWait = new Map<string, number>()
  let busyUs = 0
  for (const path of paths) {
    const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
    let atUs = profile.startTime
    profile.samples.forEach((nodeId, i) => {
      const frame = nodes.get(nodeId)?.callFrame
      const us = profile.timeDeltas[i] ?? 0
      atUs += us
      if (window !== undefined && (atUs < window.startUs || atUs > window.endUs)) return
      if (frame === undefined || frame.functionName === '(idle)' || us <= 0) return
      const wait = waitOf(frame)
      if (wait !== undefined) {
        const what = `${wait.functionName} (${wait.what})`
        byWait.set(what, (byWait.get(what) ?? 0) + us)
        return
      }
      const place = placeOf(frame)
      const name = `${frame.functionName || '(anonymous)'} ${location(frame)}`.trim()
      const entry = byFunction.get(name) ?? { name, place, us: 0 }
      entry.us += us
      byFunction.set(name, entry)
      byPlace.set(place, (byPlace.get(place) ?? 0) + us)
      busyUs += us
    })
  }
  const toRow = (name: string, place: string, us: number): SelfTime => ({
    name,
    place,
    selfMs: us / 1000,
    percent: busyUs === 0 ? 0 : (us / busyUs) * 100,
  })
  return {
    functions: [...byFunction.values()]
      .map((entry) => toRow(entry.name, entry.place, entry.us))
      .sort((a, b) => b.selfMs - a.selfMs),
    places: [...byPlace.entries()]
      .map(([place, us]) => toRow(place, place, us))
      .sort((a, b) => b.selfMs - a.selfMs),
    waits: [...byWait.entries()].map(([what, us]) => ({ what, ms: us / 1000 })),
  }
}

/** Markdown: the top functions by self time, then the time by place. */
export function summarizeProfiles(paths: string[], top = 20, window?: Window): string {
  const { functions, places, waits } = selfTimes(paths, window)
  const busyMs = functions.reduce((sum, entry) => sum + entry.selfMs, 0)
  const waited = waits.map((w) => `${w.what} ${w.ms.toFixed(0)} ms`).join(', ')
  const cells = (entry: SelfTime, withPlace: boolean) => [
    `${entry.percent.toFixed(1)}%`,
    entry.selfMs.toFixed(0),
    ...(withPlace ? [entry.place] : []),
    `\`${entry.name.replaceAll('|', '\\|')}\``,
  ]
  return [
    `Busy ${busyMs.toFixed(0)} ms in ${paths.length} thread${paths.length === 1 ? '' : 's'}` +
      `${waited === '' ? '' : `; left out as waiting: ${waited}`}.`,
    '',
    `Top ${top} functions by self time (share of busy time):`,
    '',
    renderTable(
      [['self', 'ms', 'place', 'function'], ...functions.slice(0, top).map((e) => cells(e, true))],
      ['right', 'right', 'left', 'left'],
    ),
    '',
    'Self time by place:',
    '',
    renderTable(
      [['self', 'ms', 'place'], ...places.map((e) => cells(e, false))],
      ['right', 'right', 'left'],
    ),
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const topIndex = args.indexOf('--top')
  const top = topIndex >= 0 ? Number(args.splice(topIndex, 2)[1]) : 20
  if (args.length === 0) {
    process.stderr.write('usage: node dist/bench/cpuprofile.js [--top N] <file.cpuprofile>...\n')
    process.exit(2)
  }
  console.log(summarizeProfiles(args, top))
}
