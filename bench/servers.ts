import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'

// The server processes a benchmark starts (bench/systems.ts says which and how): each is stopped
// by its PID with SIGTERM at the end, on any failure, or on SIGINT/SIGTERM of the benchmark
// itself (importing this module installs those handlers), and SIGKILLed as a last resort if the
// benchmark exits with one still running. Also the temporary directory they run in, the free
// ports they listen on, and the programs a benchmark needs.

export interface Server {
  name: string
  pid: number
  url: string
  /** The server's "listening" log line: slabkv's says how many threads serve, on which Node. */
  listening: Record<string, unknown>
  child: ChildProcess
  stop(): Promise<void>
}

const started = new Set<Server>()
const listeningTimeoutMs = 15_000
const stopTimeoutMs = 15_000

/** A port that was free a moment ago, for the systems that take their port as an argument. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      )
    })
  })
}

/** This process's environment without SLABKV_* variables, which would change the config. */
function serverEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('SLABKV_')),
  )
}

export interface StartOptions {
  /** The program to run; the node binary running the benchmark when absent. */
  command?: string
  /**
   * For servers that log no JSON "listening" line (Redis, webdis): ready once this port on
   * 127.0.0.1 accepts a connection, and reached at http://127.0.0.1:<port>.
   */
  readyPort?: number
}

export function startServer(
  name: string,
  argv: string[],
  cwd: string,
  options: StartOptions = {},
): Promise<Server> {
  const child = spawn(options.command ?? process.execPath, argv, {
    cwd,
    env: serverEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  assert(child.pid !== undefined, `${name} did not start`)
  const pid = child.pid
  let stdout = ''
  let stderr = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const server: Server = {
    name,
    pid,
    url: '',
    listening: {},
    child,
    async stop() {
      started.delete(server)
      if (child.exitCode !== null || child.signalCode !== null) return
      process.kill(pid, 'SIGTERM')
      const timer = setTimeout(() => process.kill(pid, 'SIGKILL'), stopTimeoutMs)
      await exited
      clearTimeout(timer)
    },
  }
  started.add(server)
  let listened = false
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      void server.stop()
      reject(new Error(`${name} ${why}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr}`))
    }
    const timer = setTimeout(() => fail('did not log "listening" in time'), listeningTimeoutMs)
    child.once('exit', (code, signal) => {
      if (!listened) fail(`exited with ${code ?? signal} before listening`)
      else if (started.has(server)) process.stderr.write(`${name} exited (${code ?? signal})\n`)
    })
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    const { readyPort } = options
    if (readyPort !== undefined) {
      const probe = () => {
        if (listened || !started.has(server)) return
        const socket = connect(readyPort, '127.0.0.1')
        socket.once('connect', () => {
          socket.destroy()
          listened = true
          clearTimeout(timer)
          server.url = `http://127.0.0.1:${readyPort}`
          server.listening = { port: readyPort }
          resolve(server)
        })
        socket.once('error', () => setTimeout(probe, 50))
      }
      probe()
    }
    // Read every line, always: a server blocked on a full pipe would look slow.
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk
      for (let end = stdout.indexOf('\n'); end >= 0; end = stdout.indexOf('\n')) {
        const line = stdout.slice(0, end)
        stdout = stdout.slice(end + 1)
        let parsed: Record<string, unknown> | undefined
        try {
          parsed = JSON.parse(line) as Record<string, unknown>
        } catch {}
        if (parsed?.msg === 'listening' && !listened) {
          listened = true
          clearTimeout(timer)
          server.url = String(parsed.url)
          server.listening = parsed
          resolve(server)
        }
      }
    })
  })
}

export async function stopAll(): Promise<void> {
  await Promise.allSettled([...started].map((server) => server.stop()))
}

process.once('SIGINT', () => void stopAll().then(() => process.exit(130)))
process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)))
// The last resort if this process exits with servers still running: no waiting possible here.
process.once('exit', () => {
  for (const server of started) {
    try {
      process.kill(server.pid, 'SIGKILL')
    } catch {} // Already gone.
  }
})

/** Exits, naming the script that installs them, when a program the benchmark runs is missing. */
export function requirePrograms(programs: string[]): void {
  for (const program of programs) {
    if (spawnSync('which', [program]).status !== 0) {
      console.error(
        `${program} is missing: run \`bash scripts/ensure-system-packages.sh\` (apt-get)`,
      )
      process.exit(1)
    }
  }
}

/**
 * Runs a benchmark's body with a temporary directory of its own for the servers it starts;
 * afterwards, whether the body returned or threw, stops every server still running and removes
 * the directory.
 */
export async function withWorkDir<T>(name: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(os.tmpdir(), `slabkv-bench-${name}-`))
  try {
    return await body(dir)
  } finally {
    await stopAll()
    rmSync(dir, { recursive: true, force: true })
  }
}
