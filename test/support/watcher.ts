import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cleanEnv, cliPath } from './server.js'

// `slabkv watch` (the compiled command) as a child process that keeps running: its stdout read
// as JSON lines while it runs, its exit awaited. Every watcher started here is tracked by pid, so
// that stopWatchers() kills exactly these processes and nothing else.

/** A watcher never outlives a test by much, whatever the test does. */
const watcherLifetimeMaxMs = 120_000

export interface Watcher {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Every complete stdout line, parsed as JSON. */
  lines: () => Record<string, unknown>[]
  /** The exit code (null if a signal killed it), once stdout and stderr have been read. */
  exited: Promise<number | null>
}

const running = new Set<ChildProcess>()

export function startWatch(args: string[]): Watcher {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run npm run build first`)
  const child = spawn(process.execPath, [cliPath, 'watch', ...args], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  // 'close', not 'exit': it comes after the last output has been read from the pipes.
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve))
  const killer = setTimeout(() => child.kill('SIGKILL'), watcherLifetimeMaxMs)
  void exited.then(() => {
    clearTimeout(killer)
    running.delete(child)
  })
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    lines: () =>
      stdout
        .split('\n')
        .slice(0, -1)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
  }
}

/** SIGKILLs every watcher started here that is still running, and waits for each to exit. */
export async function stopWatchers(): Promise<void> {
  const children = [...running]
  const exits = children.map(
    (child) =>
      new Promise((resolve) =>
        child.exitCode === null ? child.once('exit', resolve) : resolve(null),
      ),
  )
  for (const child of children) child.kill('SIGKILL')
  await Promise.all(exits)
}
