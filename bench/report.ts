import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// What every benchmark records beside its figures, and where. bench/results/<name>.json holds
// the latest run of each benchmark; bench/RESULTS.md gets a dated section per run appended, never
// rewritten, so the history shows how performance moved from commit to commit and machine to
// machine.

/** The repository root: this file runs as dist/bench/report.js. */
export const root = fileURLToPath(new URL('../..', import.meta.url))

export function git(...gitArgs: string[]): string {
  return execFileSync('git', gitArgs, { cwd: root, encoding: 'utf8' }).trim()
}

export interface RunContext {
  date: string
  commit: string
  /** The measured sources had uncommitted edits: the figures belong to no commit exactly. */
  sourceDirty: boolean
  node: string
  cpuModel: string
  cpuCount: number
  os: string
  /** What was typed (npm runs scripts through a shell) and what it ran. */
  command: string
  nodeCommand: string
}

/**
 * Read before measuring, as close as a benchmark gets to the build that compiled what it runs.
 * `scriptUrl` is the benchmark's import.meta.url; `sourcePaths` what its figures depend on.
 */
export function runContext(scriptUrl: string, sourcePaths: string[]): RunContext {
  const script = fileURLToPath(scriptUrl).slice(root.length)
  const nodeCommand = ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ')
  const npmScript = process.env.npm_lifecycle_event
  return {
    date: new Date().toISOString(),
    commit: git('rev-parse', '--short', 'HEAD'),
    sourceDirty: git('status', '--porcelain', '--untracked-files=no', '--', ...sourcePaths) !== '',
    node: process.version,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpuCount: os.cpus().length,
    os: `${os.type()} ${os.release()}`,
    command: npmScript === undefined ? nodeCommand : `npm run ${npmScript}`,
    nodeCommand,
  }
}

const resultsHeader =
  '# Benchmark results\n\n' +
  'Each run of a benchmark appends a dated section here; nothing is ever overwritten or ' +
  'edited, so the history shows how performance moved from commit to commit and machine to ' +
  'machine. Compare ratios measured in the same run rather than absolute figures across ' +
  'sections: the machines are shared and noisy. bench/results/ holds the latest run of ' +
  'each benchmark as JSON.\n'

/** The type of the filesystem a directory is on (ext4, tmpfs, …), for the report. */
export function filesystemOf(dir: string): string {
  const df = execFileSync('df', ['-T', dir], { encoding: 'utf8' })
  return df.trim().split('\n').at(-1)?.split(/\s+/)[1] ?? 'unknown'
}

/**
 * Prints the run's report; unless it is a dry run, also writes the figures to
 * bench/results/<name>.json and appends the report to bench/RESULTS.md (writeResults).
 */
export function publish(
  name: string,
  context: RunContext,
  dryRun: boolean,
  json: object,
  markdown: string,
): void {
  console.log(markdown)
  if (!dryRun) writeResults(name, context, json, markdown)
}

/**
 * The text with this machine's paths taken out: the repository as relative paths, and the
 * temporary directory as $TMPDIR. Results are read on other machines; where a checkout or a
 * temporary directory lived here says nothing there.
 */
export function withoutMachinePaths(text: string): string {
  const literal = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const repository = new RegExp(`${literal(root.replace(/\/$/, ''))}/?`, 'g')
  const temporary = new RegExp(`${literal(os.tmpdir().replace(/\/$/, ''))}/`, 'g')
  return text.replace(repository, '').replace(temporary, '$TMPDIR/')
}

/** Writes bench/results/<name>.json and appends the run's section to bench/RESULTS.md. */
export function writeResults(
  name: string,
  context: RunContext,
  json: object,
  markdown: string,
): void {
  const resultsDir = join(root, 'bench', 'results')
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(
    join(resultsDir, `${name}.json`),
    withoutMachinePaths(`${JSON.stringify({ ...context, ...json }, null, 2)}\n`),
  )
  const resultsPath = join(root, 'bench', 'RESULTS.md')
  if (!existsSync(resultsPath)) writeFileSync(resultsPath, resultsHeader)
  const stamp = `${context.date.slice(0, 16).replace('T', ' ')} UTC`
  const { command, nodeCommand } = context
  appendFileSync(
    resultsPath,
    withoutMachinePaths(
      `\n## ${name} — ${stamp}, commit ${context.commit}${context.sourceDirty ? ' (src/ modified)' : ''}\n\n` +
        `- Machine: ${context.cpuModel}, ${context.cpuCount} cores, Node ${context.node}, ${context.os}\n` +
        `- Command: \`${command}\`${command === nodeCommand ? '' : `, which runs \`${nodeCommand}\``}\n\n` +
        `${markdown}\n`,
    ),
  )
}

/**
 * A Markdown table laid out as Biome formats one (columns padded to their widest cell), so
 * appending it keeps RESULTS.md lint-clean. By default the first column is left-aligned and the
 * others right-aligned, as figures are; `align` says otherwise, one entry per column.
 */
export function renderTable(rows: string[][], align?: Array<'left' | 'right'>): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const isLeft = (column: number) =>
    (align?.[column] ?? (column === 0 ? 'left' : 'right')) === 'left'
  const pad = (cell: string, column: number) =>
    isLeft(column) ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)
  const line = (row: string[]) => `| ${row.map(pad).join(' | ')} |`
  const rule = widths.map((width, column) =>
    isLeft(column) ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`,
  )
  return [line(rows[0]!), line(rule), ...rows.slice(1).map(line)].join('\n')
}
