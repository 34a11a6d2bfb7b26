import assert from 'node:assert/strict'
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../src/config.js'
import { median } from './measure.js'
import { publish, renderTable, runContext } from './report.js'

// npm run bench:disk — what the disk under the data directory allows a log that syncs every
// commit: a write of one commit's bytes then fdatasync, in a loop, for each commit size, as the
// WAL writer does with --fsync always. Two ways of writing:
//   append     the file grows with every commit, as slabkv's segments do: each fdatasync also
//              makes the new size and the new blocks durable (a journal commit, on ext4);
//   overwrite  into a file written full of zeros and synced beforehand (a preallocated segment):
//              each fdatasync carries the data alone.
// Wall time per commit is the latency a durable write waits for at least; commits a second times
// the commit size is the bandwidth the log can have at that batch size. A snapshot writes as
// much again under a steady rewrite of the same keys (docs/performance.md). Rounds interleave
// every size and way, and each figure is a median of the rounds.

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string', default: os.tmpdir() },
    sizes: { type: 'string', default: '1KiB,16KiB,128KiB,1MiB,4MiB' },
    seconds: { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    'dry-run': { type: 'boolean', default: false },
  },
})
const sizes = args.sizes!.split(',').map((text) => {
  const size = parseSize(text)
  assert(size !== undefined && size > 0, `not a size: ${text}`)
  return { text, size }
})
const seconds = Number(args.seconds)
const runCount = Number(args.runs)
const ways = ['append', 'overwrite'] as const
type Way = (typeof ways)[number]

/** Commits of `size` bytes, each synced, for `seconds`: commits a second, and CPU µs each. */
function measure(dir: string, size: number, way: Way): { perSecond: number; cpuUs: number } {
  const path = join(dir, `${way}-${size}.bin`)
  const bytes = Buffer.alloc(size, 0x5a)
  // Written and synced before timing. An overwrite run ends early when it reaches the end, so
  // a fast disk measures fewer commits rather than append past the zeros.
  const room =
    way === 'overwrite' ? Math.min(256 * 1024 ** 2, Math.max(64 * 1024 ** 2, size * 1024)) : 0
  const fd = openSync(path, 'w')
  try {
    const zeros = Buffer.alloc(Math.min(room, 16 * 1024 ** 2))
    for (let at = 0; at < room; at += zeros.byteLength)
      writeSync(fd, zeros, 0, zeros.byteLength, at)
    fdatasyncSync(fd)
    let count = 0
    const cpuBefore = process.cpuUsage()
    const start = performance.now()
    const end = start + seconds * 1000
    while (performance.now() < end && (way === 'append' || (count + 1) * size <= room)) {
      writeSync(fd, bytes, 0, size, way === 'append' ? null : count * size)
      fdatasyncSync(fd)
      count++
    }
    const elapsedS = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    return { perSecond: count / elapsedS, cpuUs: (cpu.user + cpu.system) / count }
  } finally {
    closeSync(fd)
    rmSync(path, { force: true })
  }
}

const context = runContext(import.meta.url, ['bench/disk.ts'])
const dir = mkdtempSync(join(args.dir!, 'slabkv-bench-disk-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const results = new Map<string, { perSecond: number[]; cpuUs: number[] }>()
for (let round = 0; round < runCount; round++) {
  for (const { text, size } of sizes) {
    for (const way of ways) {
      const key = `${text} ${way}`
      const result = measure(dir, size, way)
      const entry = results.get(key) ?? { perSecond: [], cpuUs: [] }
      entry.perSecond.push(result.perSecond)
      entry.cpuUs.push(result.cpuUs)
      results.set(key, entry)
      console.error(
        `round ${round + 1}/${runCount} ${key}: ${result.perSecond.toFixed(0)} commits/s`,
      )
    }
  }
}

const rows = [['commit size', 'way', 'commits/s', 'µs per commit', 'MB/s', 'CPU µs per commit']]
const json: Record<string, Record<Way, { commitsPerSecond: number; cpuUs: number }>> = {}
for (const { text, size } of sizes) {
  for (const way of ways) {
    const entry = results.get(`${text} ${way}`)!
    const perSecond = median(entry.perSecond)
    const cpuUs = median(entry.cpuUs)
    json[text] ??= {} as Record<Way, { commitsPerSecond: number; cpuUs: number }>
    json[text][way] = { commitsPerSecond: perSecond, cpuUs }
    rows.push([
      text,
      way,
      perSecond.toFixed(0),
      (1e6 / perSecond).toFixed(0),
      ((perSecond * size) / 1e6).toFixed(0),
      cpuUs.toFixed(0),
    ])
  }
}
const markdown = `${renderTable(rows, ['left', 'left'])}

Write then fdatasync in a loop, ${seconds} s per size and way, medians of ${runCount} interleaved rounds, in a directory on the same file system as \`--dir\` (${args.dir === os.tmpdir() ? 'the temporary directory' : 'given'}). "append" grows the file as slabkv's log segments do; "overwrite" writes into a file already written full of zeros and synced. CPU is this process's, user and system.`
publish('disk', context, args['dry-run']!, json, markdown)
