import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { freePort } from './server.js'

// Runs the Debian package's nginx (scripts/ensure-system-packages.sh installs it) in front of
// test nodes, with deploy/nginx/slabkv.conf as the configuration: the committed file with the
// test's ports put in place of its `server` lines and its `listen` port. nginx runs in the
// foreground as this user, with every path it writes under a temporary directory, and is
// stopped by its pid.

export const nginxPath = '/usr/sbin/nginx'
export const committedConfPath = new URL('../../deploy/nginx/slabkv.conf', import.meta.url)

const startTimeoutMs = 10_000
const reloadTimeoutMs = 10_000
const stopTimeoutMs = 10_000

/** The main context the Debian package's nginx.conf would give, every path under `dir`. */
function mainConf(dir: string): string {
  // As root, nginx would run its workers as nobody, who cannot enter the 0700 temporary
  // directory; naming this user keeps the workers as the user who started the test.
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};\n` : ''
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((name) => `    ${name}_temp_path ${join(dir, name)};`)
    .join('\n')
  return `${user}worker_processes 1;
events {
    worker_connections 1024;
}
http {
${temp}
    access_log off;
    include ${join(dir, 'slabkv.conf')};
}
`
}

function globalDirectives(dir: string): string {
  return `daemon off; pid ${join(dir, 'nginx.pid')}; error_log stderr notice;`
}

/**
 * Why nginx cannot run here, or undefined when it can: the binary is missing, or it fails to
 * check a configuration that holds nothing of slabkv's. (A fault in slabkv's configuration is
 * a test failure, not a reason to skip.)
 */
export function nginxUnavailable(): string | undefined {
  if (!existsSync(nginxPath)) {
    return `${nginxPath} is missing (scripts/ensure-system-packages.sh installs the Debian package when run as root with apt)`
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-nginx-probe-'))
  try {
    writeFileSync(join(dir, 'slabkv.conf'), '')
    writeFileSync(join(dir, 'nginx.conf'), mainConf(dir))
    const args = ['-t', '-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', 'stderr']
    const result = spawnSync(nginxPath, [...args, '-g', globalDirectives(dir)], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    if (result.error) return `${nginxPath} cannot run: ${result.error.message}`
    if (result.status !== 0) {
      return `${nginxPath} -t fails on an empty configuration: ${result.stderr.trim()}`
    }
    return undefined
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export interface RenderOptions {
  listenPort: number
  /** host:port of each node, in upstream order. */
  nodes: string[]
  /** 'modulo' drops `consistent`, to compare with nginx's plain hash. */
  hash?: 'consistent' | 'modulo'
}

function replaceOnce(text: string, pattern: RegExp, replacement: string, what: string): string {
  const count = text.match(new RegExp(pattern.source, `${pattern.flags}g`))?.length ?? 0
  if (count !== 1) throw new Error(`deploy/nginx/slabkv.conf: expected one ${what}, found ${count}`)
  return text.replace(pattern, replacement)
}

/**
 * The committed configuration with these nodes and this listen port. Each server line keeps
 * the parameters (max_fails, fail_timeout) of the committed file's first one. Throws when the
 * file's shape changed, so the test never runs a configuration other than the one shipped.
 */
export function renderNginxConf(template: string, options: RenderOptions): string {
  const upstream = /^upstream slabkv \{\n[\s\S]*?^\}\n/m.exec(template)
  if (upstream === null) throw new Error('deploy/nginx/slabkv.conf: no upstream slabkv block')
  const serverLine = /^(\s*)server \S+( [^;\n]*)?;\n/gm
  const lines = [...upstream[0].matchAll(serverLine)]
  const first = lines[0]
  if (first === undefined) throw new Error('deploy/nginx/slabkv.conf: no server in the upstream')
  const [, indent = '', parameters = ''] = first
  const servers = options.nodes.map((node) => `${indent}server ${node}${parameters};\n`).join('')
  let block = upstream[0].replace(serverLine, '')
  block = block.slice(0, first.index) + servers + block.slice(first.index)
  if (options.hash === 'modulo') {
    block = replaceOnce(block, /hash \$slabkv_key consistent;/, 'hash $slabkv_key;', 'hash line')
  }
  const conf = template.replace(upstream[0], block)
  return replaceOnce(
    conf,
    /^(\s*)listen 127\.0\.0\.1:\d+;$/m,
    `$1listen 127.0.0.1:${options.listenPort};`,
    'listen line',
  )
}

export interface RunningNginx {
  url: string
  port: number
  process: ChildProcess
  /** Everything nginx wrote on stderr (its error log at notice level). */
  log: () => string
  /** Replaces the configuration and returns once every worker runs the new one. */
  reload: (options: Omit<RenderOptions, 'listenPort'>) => Promise<void>
  stop: () => Promise<void>
}

const running = new Map<ChildProcess, { exited: Promise<void>; log: () => string; dir: string }>()

/**
 * Stops the master by its pid with `signal` (SIGQUIT: graceful, the workers finish their
 * requests; SIGTERM: fast); the master stops its own workers. If it has not exited in time,
 * the master and the workers its log names are killed by pid: killing the master alone would
 * leave its workers serving the port.
 */
async function terminate(
  child: ChildProcess,
  exited: Promise<void>,
  signal: NodeJS.Signals,
  log: () => string,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  const timer = setTimeout(() => {
    child.kill('SIGKILL')
    for (const pid of liveWorkerPids(log())) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
  }, stopTimeoutMs)
  await exited
  clearTimeout(timer)
}

function workerPids(text: string): number[] {
  return [...text.matchAll(/start worker process (\d+)/g)].map((match) => Number(match[1]))
}

/** The workers started and not yet reported exited. */
function liveWorkerPids(text: string): number[] {
  return workerPids(text).filter((pid) => !text.includes(`worker process ${pid} exited`))
}

/** Resolves once `test(log)` holds; rejects on timeout, an [emerg] line, or nginx exiting. */
function waitForLog(
  child: ChildProcess,
  log: () => string,
  from: number,
  test: (text: string) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      cleanup()
      reject(new Error(`nginx ${why} ${what}\n--- nginx stderr ---\n${log()}`))
    }
    const check = () => {
      const text = log().slice(from)
      if (/\[emerg\]/.test(text)) fail(`reported an error while waiting until`)
      else if (test(text)) {
        cleanup()
        resolve()
      }
    }
    const onExit = () => fail('exited while waiting until')
    const timer = setTimeout(() => fail(`did not log within ${timeoutMs} ms that`), timeoutMs)
    const cleanup = () => {
      clearTimeout(timer)
      child.stderr?.off('data', check)
      child.off('exit', onExit)
    }
    child.stderr?.on('data', check)
    child.once('exit', onExit)
    check()
  })
}

async function startOnce(options: RenderOptions): Promise<RunningNginx> {
  const template = readFileSync(committedConfPath, 'utf8')
  const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-nginx-'))
  const confPath = join(dir, 'nginx.conf')
  writeFileSync(join(dir, 'slabkv.conf'), renderNginxConf(template, options))
  writeFileSync(confPath, mainConf(dir))
  const args = ['-p', `${dir}/`, '-c', confPath, '-e', 'stderr', '-g', globalDirectives(dir)]
  const child = spawn(nginxPath, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk
  })
  const log = () => stderr
  running.set(child, { exited, log, dir })
  void exited.then(() => running.delete(child))

  const stop = async () => {
    await terminate(child, exited, 'SIGQUIT', log)
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    await waitForLog(
      child,
      log,
      0,
      (text) => workerPids(text).length > 0,
      startTimeoutMs,
      'it started a worker',
    )
  } catch (error) {
    await stop()
    throw error
  }

  const reload = async (next: Omit<RenderOptions, 'listenPort'>) => {
    const oldWorkers = liveWorkerPids(stderr)
    const from = stderr.length
    writeFileSync(
      join(dir, 'slabkv.conf'),
      renderNginxConf(template, { ...next, listenPort: options.listenPort }),
    )
    // What `nginx -s reload` sends. The new configuration is in force once the new workers
    // run and the old ones, which may still hold kept-alive connections, have exited.
    child.kill('SIGHUP')
    await waitForLog(
      child,
      log,
      from,
      (text) =>
        workerPids(text).length > 0 &&
        oldWorkers.every((pid) => text.includes(`worker process ${pid} exited`)),
      reloadTimeoutMs,
      'the reload finished',
    )
    // The old workers closed their kept-alive connections to us before they exited, so the
    // closures are already in our sockets, but maybe in the same event-loop turn as the log
    // line that resolved the wait. Without letting that turn finish, the next fetch could pick a
    // pooled connection whose close is not yet processed, and fail with "other side closed"
    // (it did once in CI, on a HEAD right after a reload).
    await new Promise((resolve) => setImmediate(resolve))
  }

  return {
    url: `http://127.0.0.1:${options.listenPort}`,
    port: options.listenPort,
    process: child,
    log,
    reload,
    stop,
  }
}

/**
 * Starts nginx on a free port with the committed configuration for these nodes, resolving once
 * a worker runs. A port taken between the probe and the bind is retried on a new one.
 */
export async function startNginx(options: Omit<RenderOptions, 'listenPort'>) {
  for (let attempt = 1; ; attempt++) {
    const listenPort = await freePort()
    try {
      return await startOnce({ ...options, listenPort })
    } catch (error) {
      if (attempt < 3 && /Address already in use/.test(String(error))) continue
      throw error
    }
  }
}

/**
 * Stops (SIGTERM, then SIGKILL) every nginx this module started that is still running, and
 * removes its directory.
 */
export async function killAllNginx(): Promise<void> {
  await Promise.all(
    [...running].map(async ([child, { exited, log, dir }]) => {
      await terminate(child, exited, 'SIGTERM', log)
      rmSync(dir, { recursive: true, force: true })
    }),
  )
}
