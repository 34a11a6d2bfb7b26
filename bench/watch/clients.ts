import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import { root } from '../report.js'
import type { Command, DrainResult, Finished, LatencyResult } from './client.js'

// The benchmark's side of the watchers' processes (bench/watch/client.ts): forks them, sends
// each command and awaits its answer, spreads watchers over the processes, and stops them by
// their process ids when the benchmark ends.

const clientPath = join(root, 'dist', 'bench', 'watch', 'client.js')

class ClientProcess {
  readonly child: ChildProcess
  #nextId = 0
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()

  constructor() {
    this.child = fork(clientPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
      const waiting = this.#pending.get(message.id)
      this.#pending.delete(message.id)
      if (message.error !== undefined) waiting?.reject(new Error(message.error))
      else waiting?.resolve(message.result)
    })
    this.child.once('exit', (code, signal) => {
      for (const waiting of this.#pending.values())
        waiting.reject(new Error(`the watchers' process exited (${code ?? signal})`))
      this.#pending.clear()
    })
  }

  call<T>(command: Command): Promise<T> {
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, command })
    })
  }
}

export class WatcherProcesses {
  readonly #processes: ClientProcess[]

  constructor(count: number) {
    this.#processes = Array.from({ length: count }, () => new ClientProcess())
  }

  get pids(): number[] {
    return this.#processes.map((p) => p.child.pid!)
  }

  /** Opens `count` watchers, spread evenly over the processes. */
  async open(url: string, prefix: string, count: number): Promise<void> {
    const n = this.#processes.length
    await Promise.all(
      this.#processes.map((p, i) => {
        const share = Math.floor(count / n) + (i < count % n ? 1 : 0)
        return share === 0 ? 0 : p.call<number>({ cmd: 'open', url, prefix, count: share })
      }),
    )
  }

  async mark(from?: number): Promise<void> {
    await Promise.all(this.#processes.map((p) => p.call({ cmd: 'mark', from })))
  }

  async finish(from: number, to: number, timeoutMs: number): Promise<Finished['watchers']> {
    const answers = await Promise.all(
      this.#processes.map((p) => p.call<Finished>({ cmd: 'finish', from, to, timeoutMs })),
    )
    return answers.flatMap((answer) => answer.watchers)
  }

  /** In the first process only: the writer and its watchers share one clock. */
  latency(url: string, watcherCount: number, rate: number, seconds: number) {
    return this.#processes[0]!.call<LatencyResult>({
      cmd: 'latency',
      url,
      watcherCount,
      rate,
      seconds,
    })
  }

  drain(url: string, prefix: string, since: number, to: number, timeoutMs: number) {
    return this.#processes[0]!.call<DrainResult>({
      cmd: 'drain',
      url,
      prefix,
      since,
      to,
      timeoutMs,
    })
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#processes.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        process.kill(child.pid!, 'SIGTERM')
        await exited
      }),
    )
  }
}
