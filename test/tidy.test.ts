import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// House rules a reviewer would otherwise have to remember, checked over every tracked file: the
// size of a file (one concern per file keeps them short), no import cycles, nothing that points
// outside the repository, and no stray console output in the server.

const root = fileURLToPath(new URL('../', import.meta.url))
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((path) => path !== '')
const read = (path: string) => readFileSync(join(root, path), 'utf8')
const lineCount = (path: string) => read(path).split('\n').length - 1

const code = tracked.filter((path) => /\.(ts|js|mjs|css|html|sh)$/.test(path))

/** Longer than 400 lines, each for a reason; a file that shrinks below leaves the list. */
const longFiles: Record<string, string> = {
  'src/store/store.ts':
    'what runs under the lock (get, set, delete, batches, making room, replay), sharing the state of one lock hold',
  'src/wal/writer.ts': 'the writer thread: ring draining, group commit, rotation, snapshots',
  'src/wal/recovery.ts': "recovery's decision table and the replay it drives, read together",
  'src/config.ts': 'the option table: every option with its range and description',
  'src/http/server.ts': 'the connection layer: ordering, pipelining bounds, timeouts',
  'bench/store.ts': 'one benchmark script, top to bottom',
  'public/style.css': "the UI's shared styles and its light and dark palettes",
  'test/concurrency/hammer.ts': 'the worker-thread workload and the checks its report must pass',
  'test/concurrency/http-clients.test.ts':
    'one history of many clients, and the checker that reads it',
  'test/e2e/connections.test.ts':
    'connection behaviour on one server: keep-alive, pipelining, slow readers',
  'test/e2e/hostile-input.test.ts':
    'hostile input on one server: media types, keys, JSON, each class generated',
  'test/e2e/lifecycle.test.ts': 'starting, stopping and configuring real server processes',
  'test/e2e/ui.test.ts':
    'the UI in one browser session per file: keys, forms, paging, accessibility',
  'test/fuzz/driver.ts': 'the generative test: connections, restarts and the model they check',
  'test/property/store-model.test.ts':
    'the store against its model, the generator beside the checks',
  'test/unit/store/store.test.ts': 'the Store class, one describe per operation',
  'test/support/simulated-disk.ts':
    'one simulated file system: its files, its names, and what a crash keeps of each',
}

describe('tidy', () => {
  it('keeps code files within 400 lines, except those listed with a reason', () => {
    const over = code.filter((path) => lineCount(path) > 400 && !(path in longFiles))
    const listedNoLonger = Object.keys(longFiles).filter(
      (path) => !tracked.includes(path) || lineCount(path) <= 400,
    )
    expect(over.map((path) => `${path}: ${lineCount(path)} lines`)).toEqual([])
    expect(listedNoLonger, 'listed as long, but no longer is: take it off the list').toEqual([])
  })

  it('keeps the README for users: at most 200 lines', () => {
    expect(lineCount('README.md')).toBeLessThanOrEqual(200)
  })

  it('has no import cycle in src/ and workers/', () => {
    const modules = code.filter((path) => /^(src|workers)\/.*\.ts$/.test(path))
    const imports = new Map<string, string[]>()
    for (const path of modules) {
      const targets: string[] = []
      for (const match of read(path).matchAll(
        /^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms,
      )) {
        targets.push(join(dirname(path), match[1]!.replace(/\.js$/, '.ts')))
      }
      imports.set(path, targets)
    }
    const cycles: string[] = []
    const state = new Map<string, 'visiting' | 'done'>()
    const stack: string[] = []
    const visit = (path: string) => {
      state.set(path, 'visiting')
      stack.push(path)
      for (const target of imports.get(path) ?? []) {
        if (state.get(target) === 'visiting') {
          cycles.push([...stack.slice(stack.indexOf(target)), target].join(' → '))
        } else if (state.get(target) === undefined) visit(target)
      }
      stack.pop()
      state.set(path, 'done')
    }
    for (const path of modules) if (state.get(path) === undefined) visit(path)
    expect(cycles).toEqual([])
  })

  it('points at nothing outside the repository', () => {
    // Benchmark results too: they name the machine (CPU, Node, kernel), not its paths
    // (bench/report.ts writes them through withoutMachinePaths).
    const checked = tracked.filter(
      (path) =>
        /\.(ts|js|mjs|css|html|sh|md|json|svg|yml|yaml)$/.test(path) &&
        path !== 'test/tidy.test.ts',
    )
    const outside =
      /\.\.\/shared\b|\bDESIGN\.md\b|\bSTYLE\.md\b|\/work\/|\/home\/\w+|\/tmp\/slabkv-bench-/
    const found = checked.flatMap((path) =>
      read(path)
        .split('\n')
        .flatMap((line, i) => (outside.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : [])),
    )
    expect(found).toEqual([])
  })

  it('writes no console.log in the server: it logs JSON lines through src/log.ts', () => {
    const found = code
      .filter((path) => /^(src|workers)\//.test(path))
      .filter((path) => /\bconsole\.log\(/.test(read(path)))
    expect(found).toEqual([])
  })

  it('calls the PyKV-compatible routes pykv, never seed (the word for a random seed)', () => {
    const pykvAsSeed =
      /\bregisterSeed|\bisSeedPath|\bseedValidation|\bSeedError|\bthe seed's|\bseed routes?\b|routes\/seed\b|seed-api/i
    const found = tracked
      .filter((path) => /\.(ts|js|md)$/.test(path) && path !== 'test/tidy.test.ts')
      .filter((path) => !path.startsWith('bench/results') && path !== 'bench/RESULTS.md')
      .flatMap((path) =>
        read(path)
          .split('\n')
          .flatMap((line, i) =>
            pykvAsSeed.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : [],
          ),
      )
    expect(found).toEqual([])
  })
})
