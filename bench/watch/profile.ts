import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { selfTimes, summarizeProfiles } from '../cpuprofile.js'
import { renderTable, root } from '../report.js'
import type { SystemSpec } from '../systems.js'
import { measureWrites, type WritesPlan } from './measure.js'

// bench:watch --profile: one writes case once more, its server under node --cpu-prof, and where
// its time went: per thread first (the handler threads, the main thread and the WAL writer each
// write a profile; the top function names which is which), then every thread together
// (bench/cpuprofile.ts). The window is the measurement: opening the watchers, the load, and
// the watchers' catch-up after it.

export async function profiled(
  spec: SystemSpec,
  workDir: string,
  watcherCount: number,
  plan: WritesPlan,
  timing: { warmupS: number; durationS: number },
): Promise<string> {
  const dir = join(workDir, `profile-${watcherCount}`)
  mkdirSync(dir)
  const system = await spec.start({ workDir: join(workDir, 'profiled') }, [
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
  ])
  await measureWrites(system, watcherCount, timing.warmupS, plan)
  const startUs = Number(process.hrtime.bigint() / 1000n)
  const run = await measureWrites(system, watcherCount, timing.durationS, plan)
  const window = { startUs, endUs: Number(process.hrtime.bigint() / 1000n) }
  await system.stop() // The profiles are written as the process exits.
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => join(dir, name))
  assert(files.length > 0, `no .cpuprofile in ${dir}`)
  const threads = files.map((file) => {
    const { functions, waits } = selfTimes([file], window)
    const busyMs = functions.reduce((sum, entry) => sum + entry.selfMs, 0)
    const top = functions
      .slice(0, 3)
      .map((f) => `\`${f.name.replaceAll('|', '\\|')}\` ${f.percent.toFixed(0)}%`)
    const waited = waits.reduce((sum, w) => sum + w.ms, 0)
    return { file: basename(file), busyMs, waited, top: top.join(', ') }
  })
  const perThread = renderTable(
    [
      ['profile (one per thread)', 'busy ms', 'waiting ms', 'its top functions'],
      ...threads
        .sort((a, b) => b.busyMs - a.busyMs)
        .map((t) => [t.file, t.busyMs.toFixed(0), t.waited.toFixed(0), t.top]),
    ],
    ['left', 'right', 'right', 'left'],
  )
  const label = `${watcherCount} watcher${watcherCount === 1 ? '' : 's'}`
  const checks =
    run.problems.length === 0
      ? 'every watcher checked'
      : `checks failed: ${run.problems.join('; ')}`
  return (
    `Where the server's time goes with ${label}, under \`node --cpu-prof\` ` +
    `(${timing.durationS} s after ${timing.warmupS} s of warm-up, ` +
    `${Math.round(run.requestsPerSecond).toLocaleString('en-US')} PUT/s under the profiler, ` +
    `${run.serverCpuS === null ? '?' : Math.round((run.serverCpuS * 1e6) / run.requests)} µs of server CPU per write, ${checks}; ` +
    `the window covers opening the watchers, the load and their catch-up).\n\n${perThread}\n\n` +
    summarizeProfiles(files, 25, window) +
    callersOfTop(files, window)
  )
}

interface Frame {
  functionName: string
  url: string
  lineNumber: number
}
interface Node {
  id: number
  callFrame: Frame
  children?: number[]
}
interface Profile {
  nodes: Node[]
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

const frameName = (frame: Frame) => {
  const url = frame.url.replace(`file://${root}`, '')
  return `${frame.functionName || '(anonymous)'}${url === '' ? '' : ` ${url}:${frame.lineNumber + 1}`}`
}

/**
 * Who calls the functions with the most self time, over every thread: a native function
 * (writev, read) says what was done, its caller and the nearest frame outside Node's internals
 * say on whose behalf.
 */
function callersOfTop(
  files: string[],
  window: { startUs: number; endUs: number },
  top = 5,
): string {
  const byFunction = new Map<string, number>()
  const byPath = new Map<string, Map<string, number>>()
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
    const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
    const parents = new Map<number, number>()
    for (const node of profile.nodes)
      for (const child of node.children ?? []) parents.set(child, node.id)
    let atUs = profile.startTime
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0
      atUs += us
      if (atUs < window.startUs || atUs > window.endUs || us <= 0) return
      const frame = nodes.get(id)?.callFrame
      if (frame === undefined || frame.functionName.startsWith('(')) return
      if (frame.functionName === 'waitForRecords' || frame.functionName === 'fdatasync') return
      const name = frameName(frame)
      byFunction.set(name, (byFunction.get(name) ?? 0) + us)
      // The caller, then the nearest frame outside Node's internals: on whose behalf (or,
      // when every frame is Node's, the outermost below the root: what the event loop ran).
      const path: string[] = []
      let outermost: Frame | undefined
      for (let up = parents.get(id); up !== undefined; up = parents.get(up)) {
        const caller = nodes.get(up)!.callFrame
        const outside = caller.url !== '' && !caller.url.startsWith('node:')
        if (path.length === 0 || outside) path.push(frameName(caller))
        if (outside) break
        if (caller.functionName !== '(root)') outermost = caller
        if (parents.get(up) === undefined && outermost !== undefined && path.length === 1)
          path.push(`… ${frameName(outermost)}`)
      }
      const paths = byPath.get(name) ?? new Map<string, number>()
      const key = path.join(' ← ')
      paths.set(key, (paths.get(key) ?? 0) + us)
      byPath.set(name, paths)
    })
  }
  const rows = [['function', 'ms', 'called by ← on behalf of (the nearest frame outside node:)']]
  for (const [name] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    for (const [path, us] of [...byPath.get(name)!].sort((a, b) => b[1] - a[1]).slice(0, 3))
      rows.push([`\`${name}\``, (us / 1000).toFixed(0), `\`${path.replaceAll('|', '\\|')}\``])
  }
  return `\n\nThe callers of the ${top} functions with the most self time (their 3 heaviest callers; the writer's waits left out):\n\n${renderTable(rows, ['left', 'right', 'left'])}`
}
