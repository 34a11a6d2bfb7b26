import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Starts the compiled `slabkv serve` as a child process, the way an operator runs it, and the
// terminal client the same way. `npm test` builds dist/ first. Every process started here is
// tracked by pid so that tests kill exactly the processes they started, and nothing else.

export const cliPath = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url))

const listeningTimeoutMs = 10_000
// The default --shutdown-timeout-ms is 10 s; give the process a little longer to exit on its own.
const stopTimeoutMs = 15_000

/** One JSON log line as the server writes it on stdout. */
export interface LogLine {
  time?: unknown
  level?: unknown
  msg?: unknown
  [field: string]: unknown
}

export interface RunningServer {
  /** http://127.0.0.1:<port>, whatever --host is: tests always connect over loopback. */
  url: string
  port: number
  process: ChildProcess
  /** The temporary working directory the server runs in (./data lands there). */
  cwd: string
  /** Every stdout line that parsed as JSON, in order; grows while the server runs. */
  logs: LogLine[]
  /** The first log line with msg 'listening'. */
  listening: LogLine
  stdout: () => string
  stderr: () => string
  /** Sends the signal and resolves with the exit code (null if a signal killed the process). */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
  /** Resolves with the exit code once the process has exited, sending nothing. */
  exited: Promise<number | null>
}

export interface Exited {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  logs: LogLine[]
}

const running = new Set<ChildProcess>()

function requireBuild(): void {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build first`)
}

/** The test process's environment without any SLABKV_* variable, plus the given ones. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('SLABKV_')) env[name] = value
  }
  return { ...env, ...extra }
}

/** A port that was free a moment ago: listen on port 0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('no port'))
        return
      }
      server.close(() => resolve(address.port))
    })
  })
}

function parseLogLines(text: string): LogLine[] {
  const logs: LogLine[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    try {
      const parsed: unknown = JSON.parse(line)
      if (parsed !== null && typeof parsed === 'object') logs.push(parsed as LogLine)
    } catch {
      // Not a JSON line; the raw text stays available through stdout().
    }
  }
  return logs
}

const tempDirs = new Set<string>()

function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-e2e-'))
  tempDirs.add(dir)
  return dir
}

function waitForExit(child: ChildProcess): Promise<{
  code: number | null
  signal: NodeJS.Signals | null
}> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
}

async function startOnce(
  flags: string[],
  env: Record<string, string>,
  port: number,
): Promise<RunningServer> {
  const cwd = makeTempDir()
  const hasHost = flags.includes('--host')
  const args = [cliPath, 'serve', ...(hasHost ? [] : ['--host', '127.0.0.1']), '--port']
  args.push(String(port), ...flags)
  const child = spawn(process.execPath, args, {
    cwd,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  let pending = ''
  const logs: LogLine[] = []
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = waitForExit(child).then((result) => {
    running.delete(child)
    return result
  })

  const listening = await new Promise<LogLine>((resolve, reject) => {
    const fail = (why: string) => {
      reject(
        new Error(
          `slabkv serve ${flags.join(' ')} ${why}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
        ),
      )
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      fail(`did not log 'listening' within ${listeningTimeoutMs} ms`)
    }, listeningTimeoutMs)
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk
      pending += chunk
      const end = pending.lastIndexOf('\n')
      if (end < 0) return
      const complete = pending.slice(0, end + 1)
      pending = pending.slice(end + 1)
      for (const line of parseLogLines(complete)) {
        logs.push(line)
        if (line.msg === 'listening') {
          clearTimeout(timer)
          resolve(line)
        }
      }
    })
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      fail(`exited (code ${code}, signal ${signal}) before logging 'listening'`)
    })
  })

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
    const { code } = await exited
    clearTimeout(timer)
    rmSync(cwd, { recursive: true, force: true })
    return code
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    cwd,
    logs,
    listening,
    stdout: () => stdout,
    stderr: () => stderr,
    stop,
    exited: exited.then(({ code }) => code),
  }
}

/**
 * Starts `slabkv serve --host 127.0.0.1 --port <free port> ...flags` in a fresh temporary
 * directory and resolves once it logs 'listening'. Another process may take the free port
 * between the probe and the bind, so an EADDRINUSE start is retried on a new port. A `port`
 * given (a restart where the clients expect the server) is used as it is, once.
 */
export async function startServer(
  flags: string[] = [],
  env: Record<string, string> = {},
  options: { port?: number } = {},
): Promise<RunningServer> {
  requireBuild()
  if (options.port !== undefined) return startOnce(flags, env, options.port)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return await startOnce(flags, env, port)
    } catch (error) {
      if (attempt < 3 && /EADDRINUSE/.test(String(error))) continue
      throw error
    }
  }
}

/** Kills (SIGKILL) every process this module started that is still running. */
export async function killAll(): Promise<void> {
  const children = [...running]
  for (const child of children) child.kill('SIGKILL')
  await Promise.all(children.map(waitForExit))
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  tempDirs.clear()
}

/**
 * Runs the CLI to completion (`slabkv ...args`) in a fresh temporary directory, with an
 * optional stdin, and kills it after timeoutMs.
 */
export async function runCli(
  args: string[],
  options: {
    env?: Record<string, string>
    input?: string | Uint8Array
    timeoutMs?: number
    /** The node binary to run the CLI with; the test's own by default. */
    node?: string
  } = {},
): Promise<Exited> {
  requireBuild()
  const cwd = makeTempDir()
  const child = spawn(options.node ?? process.execPath, [cliPath, ...args], {
    cwd,
    env: cleanEnv(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk
  })
  child.stdin.on('error', () => {
    // The process may exit without reading its stdin.
  })
  child.stdin.end(options.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000)
  // 'close', not 'exit': it comes after the last output has been read from the pipes.
  const { code, signal } = await new Promise<{
    code: number | null
    signal: NodeJS.Signals | null
  }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
  clearTimeout(timer)
  running.delete(child)
  rmSync(cwd, { recursive: true, force: true })
  return { code, signal, stdout, stderr, logs: parseLogLines(stdout) }
}

let keyCounter = 0

/** A key no other test uses: the label, a per-process counter and a random suffix. */
export function uniqueKey(label: string): string {
  keyCounter++
  return `${label}-${keyCounter}-${Math.random().toString(36).slice(2, 8)}`
}

/** The path segment for a key: every reserved character percent-encoded ('/' as %2F). */
export function keyPath(key: string): string {
  return encodeURIComponent(key)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
