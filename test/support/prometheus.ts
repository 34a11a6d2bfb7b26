import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { freePort, sleep } from './server.js'

// Runs Debian's Prometheus and promtool (the `prometheus` package, which
// scripts/ensure-system-packages.sh installs) for the tests: promtool on a /metrics answer, and
// a Prometheus of the test's own, on a free loopback port, with a temporary configuration and
// storage directory, scraping the test's nodes. It is stopped by its pid, and its directory
// removed; nothing of the package's own service or configuration is used.

export const prometheusPath = '/usr/bin/prometheus'
export const promtoolPath = '/usr/bin/promtool'

const readyTimeoutMs = 30_000
const stopTimeoutMs = 10_000

/** Why Prometheus or promtool cannot run here, or undefined when both can. */
export function prometheusUnavailable(): string | undefined {
  for (const path of [prometheusPath, promtoolPath]) {
    if (!existsSync(path)) {
      return `${path} is missing (scripts/ensure-system-packages.sh installs Debian's prometheus when run as root with apt)`
    }
    const result = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 })
    if (result.error) return `${path} cannot run: ${result.error.message}`
    if (result.status !== 0) return `${path} --version fails: ${result.stderr.trim()}`
  }
  return undefined
}

/** The first line of `prometheus --version`, for the test's output. */
export function prometheusVersion(): string {
  return spawnSync(prometheusPath, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]!
}

/** `promtool check metrics` on an exposition: its exit status and everything it printed. */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const result = spawnSync(promtoolPath, ['check', 'metrics'], {
    input: text,
    encoding: 'utf8',
    timeout: 30_000,
  })
  if (result.error) throw result.error
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() }
}

export interface Sample {
  metric: Record<string, string>
  /** [unix seconds, value as text], as Prometheus' HTTP API gives it. */
  value: [number, string]
}

export interface Target {
  scrapeUrl: string
  health: string
  lastError: string
  /** When the latest scrape started (RFC 3339). */
  lastScrape: string
}

export interface RunningPrometheus {
  url: string
  /** An instant query through /api/v1/query; throws unless Prometheus answers success. */
  query: (expression: string) => Promise<Sample[]>
  /** The active scrape targets (/api/v1/targets). */
  targets: () => Promise<Target[]>
  /** /api/v1/metadata for one metric: its type and help, as Prometheus took them from a scrape. */
  metadata: (metric: string) => Promise<{ type: string; help: string }[]>
  log: () => string
  stop: () => Promise<void>
}

const running = new Map<ChildProcess, { exited: Promise<void>; dir: string }>()

async function api<T>(url: string, log: () => string): Promise<T> {
  const response = await fetch(url)
  const text = await response.text()
  const body = JSON.parse(text) as { status: string; data: T }
  if (response.status !== 200 || body.status !== 'success') {
    throw new Error(`${url}: ${response.status} ${text}\n--- prometheus log ---\n${log()}`)
  }
  return body.data
}

/**
 * Starts Prometheus scraping `targets` (host:port) at `metrics_path` /metrics every
 * `scrapeIntervalS`, and resolves once it reports ready.
 */
export async function startPrometheus(options: {
  targets: string[]
  scrapeIntervalS: number
}): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-prometheus-'))
  const config = `global:
  scrape_interval: ${options.scrapeIntervalS}s
  scrape_timeout: ${options.scrapeIntervalS}s
scrape_configs:
  - job_name: slabkv
    metrics_path: /metrics
    static_configs:
      - targets: [${options.targets.map((target) => `'${target}'`).join(', ')}]
`
  writeFileSync(join(dir, 'prometheus.yml'), config)
  const port = await freePort()
  const child = spawn(
    prometheusPath,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    output += chunk
  })
  child.stderr.on('data', (chunk: string) => {
    output += chunk
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  running.set(child, { exited, dir })
  const log = () => output
  const url = `http://127.0.0.1:${port}`

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
    await exited
    clearTimeout(timer)
    running.delete(child)
    rmSync(dir, { recursive: true, force: true })
  }

  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop()
      throw new Error(`prometheus exited before it was ready\n--- prometheus log ---\n${log()}`)
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (response) => response.status === 200,
      () => false,
    )
    if (ready) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`prometheus not ready within ${readyTimeoutMs} ms\n${log()}`)
    }
    await sleep(100)
  }

  return {
    url,
    query: async (expression) =>
      (
        await api<{ result: Sample[] }>(
          `${url}/api/v1/query?query=${encodeURIComponent(expression)}`,
          log,
        )
      ).result,
    targets: async () =>
      (await api<{ activeTargets: Target[] }>(`${url}/api/v1/targets`, log)).activeTargets,
    metadata: async (metric) =>
      (
        await api<Record<string, { type: string; help: string }[]>>(
          `${url}/api/v1/metadata?metric=${encodeURIComponent(metric)}`,
          log,
        )
      )[metric] ?? [],
    log,
    stop,
  }
}

/** Kills (SIGKILL) every Prometheus this module started that still runs, by its pid. */
export async function killAllPrometheus(): Promise<void> {
  const entries = [...running]
  for (const [child] of entries) child.kill('SIGKILL')
  await Promise.all(entries.map(([, { exited }]) => exited))
  for (const [child, { dir }] of entries) {
    running.delete(child)
    rmSync(dir, { recursive: true, force: true })
  }
}
