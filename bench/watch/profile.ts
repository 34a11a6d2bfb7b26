import assert from 'node:assert/strict'
import { mkdirSync, readdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { selfTimes, summarizeProfiles } from '../cpuprofile.js'
import { renderTable } from '../report.js'
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
    summarizeProfiles(files, 25, window)
  )
}
