import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { type Agent, type IncomingHttpHeaders, request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// A small harness for the concurrency suite: the compiled `slabkv serve` as a child process,
// started in a temporary directory and stopped by its pid, plus a bare HTTP/1.1 request over a
// caller's keep-alive Agent. It is deliberately separate from test/support/server.ts, which the
// end-to-end suite owns. Every process started here is killed by killStarted(), so a failing
// test never leaves a server behind.

const cliPath = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url))
const listeningTimeoutMs = 15_000
/** The default --shutdown-timeout-ms is 10 s; the process gets a little longer to exit. */
const exitTimeoutMs = 15_000
const startAttemptMax = 3

export type LogLine = Record<string, unknown>

export interface ServerProcess {
  port: number
  pid: number
  /** Every stdout line that parsed as JSON, in order; grows while the server runs. */
  logs: LogLine[]
  /** The 'listening' line. */
  listening: LogLine
  /** Stdout and stderr so far, for failure messages. */
  output: () => string
  /** Sends SIGTERM to the pid and resolves with the exit code once the process has exited. */
  stop: () => Promise<number | null>
}

const started = new Map<number, { child: ChildProcess; cwd: string }>()

/** A port that was free a moment ago: listen on port 0, read the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      probe.close(() => (port === 0 ? reject(new Error('no free port')) : resolve(port)))
    })
  })
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
}

async function startOnce(
  flags: string[],
  env: Record<string, string>,
  port: number,
): Promise<ServerProcess> {
  const cwd = mkdtempSync(join(tmpdir(), 'slabkv-concurrency-'))
  const childEnv: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('SLABKV_')) childEnv[name] = value
  }
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--host', '127.0.0.1', '--port', String(port), ...flags],
    { cwd, env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  if (child.pid === undefined) throw new Error(`could not spawn ${process.execPath}`)
  const pid = child.pid
  started.set(pid, { child, cwd })
  let output = ''
  let pending = ''
  const logs: LogLine[] = []
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    output += chunk
  })
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    output += chunk
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      try {
        const parsed: unknown = JSON.parse(line)
        if (parsed !== null && typeof parsed === 'object') logs.push(parsed as LogLine)
      } catch {
        // Not a JSON line; it stays in output() for failure messages.
      }
    }
  })
  const exited = exitOf(child)

  const listening = await new Promise<LogLine>((resolve, reject) => {
    const fail = (why: string) => {
      clearInterval(poll)
      clearTimeout(timer)
      reject(new Error(`slabkv serve ${flags.join(' ')} ${why}\n${output}`))
    }
    const timer = setTimeout(() => {
      process.kill(pid, 'SIGKILL')
      fail(`did not log 'listening' within ${listeningTimeoutMs} ms`)
    }, listeningTimeoutMs)
    // The poll is bounded by the timer above.
    const poll = setInterval(() => {
      const line = logs.find((entry) => entry.msg === 'listening')
      if (line === undefined) return
      clearInterval(poll)
      clearTimeout(timer)
      resolve(line)
    }, 10)
    void exited.then((code) => fail(`exited with code ${code} before logging 'listening'`))
  })

  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM')
    const timer = setTimeout(() => process.kill(pid, 'SIGKILL'), exitTimeoutMs)
    const code = await exited
    clearTimeout(timer)
    started.delete(pid)
    rmSync(cwd, { recursive: true, force: true })
    return code
  }
  return { port, pid, logs, listening, output: () => output, stop }
}

/**
 * Starts `slabkv serve --host 127.0.0.1 --port <free port> ...flags` and resolves once it logs
 * 'listening'. Another process may take the port between the probe and the bind, so a start
 * that fails with EADDRINUSE is retried on a new port, a bounded number of times.
 */
export async function startServer(
  flags: string[],
  env: Record<string, string>,
): Promise<ServerProcess> {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build first`)
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(flags, env, await freePort())
    } catch (error) {
      if (attempt >= startAttemptMax || !/EADDRINUSE/.test(String(error))) throw error
    }
  }
}

/** SIGKILLs every server started here that is still running, by pid, and removes its directory. */
export async function killStarted(): Promise<void> {
  const entries = [...started.entries()]
  started.clear()
  for (const [pid, { child }] of entries) {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL')
  }
  for (const [, { child, cwd }] of entries) {
    await exitOf(child)
    rmSync(cwd, { recursive: true, force: true })
  }
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One HTTP/1.1 request to 127.0.0.1 over `agent`; rejects on a network error or a timeout. */
export function send(
  agent: Agent,
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; timeoutMs: number },
): Promise<Reply> {
  const headers = { ...options.headers }
  if (options.body !== undefined)
    headers['Content-Length'] = String(Buffer.byteLength(options.body))
  return new Promise((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, method, path, agent, headers, timeout: options.timeoutMs },
      (incoming) => {
        let body = ''
        incoming.setEncoding('utf8')
        incoming.on('data', (chunk: string) => {
          body += chunk
        })
        incoming.on('end', () =>
          resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, body }),
        )
        incoming.on('error', reject)
      },
    )
    outgoing.on('timeout', () => {
      outgoing.destroy(new Error(`${method} ${path} got no answer within ${options.timeoutMs} ms`))
    })
    outgoing.on('error', reject)
    outgoing.end(options.body)
  })
}

/**
 * CPU time (user + system, in clock ticks) of each thread of `pid` whose name is `threadName`,
 * by thread id, from /proc; undefined where there is no /proc (not Linux). Node names its
 * worker threads 'WorkerThread', so this tells whether every handler thread did some work.
 */
export function threadCpuTicks(pid: number, threadName: string): Map<number, number> | undefined {
  const tasks = `/proc/${pid}/task`
  if (!existsSync(tasks)) return undefined
  const ticks = new Map<number, number>()
  for (const tid of readdirSync(tasks)) {
    try {
      if (readFileSync(`${tasks}/${tid}/comm`, 'utf8').trim() !== threadName) continue
      const stat = readFileSync(`${tasks}/${tid}/stat`, 'utf8')
      // The name, field 2, is in parentheses and may hold spaces; fields 14 and 15 (utime,
      // stime) are the 12th and 13th after it.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks.set(Number(tid), Number(fields[11]) + Number(fields[12]))
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return ticks
}
