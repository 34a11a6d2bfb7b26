import { Piscina } from 'piscina'
import type { ServerConfig } from './config.js'
import { exitFailed } from './exit-codes.js'
import type { Runtime } from './http/deps.js'
import { createRequestTimesBuffer } from './http/request-times.js'
import type { Log } from './log.js'

// The handler threads: a Piscina pool of config.threadCount threads, each running one task for
// the server's whole life (workers/http-worker.ts: attach to the shared buffer, serve the app on
// the shared port). The main thread serves nothing; it talks to the threads over a broadcast
// channel: each says when it listens, and all stop when told.

export const controlChannelName = 'slabkv-control'

/** What each handler thread is given: the one task it runs for the server's whole life. */
export interface HttpWorkerTask {
  buffer: SharedArrayBuffer
  config: ServerConfig
  /** The main thread's runtime facts, shared by /v1/stats in every thread. */
  runtime: Runtime
  /** Where every thread counts its request times, one region each (src/http/request-times.ts). */
  requestTimes: SharedArrayBuffer
}

export interface HandlerThreads {
  /** Stops every thread's server gracefully (in-flight requests finish), then the pool. */
  stop(): Promise<void>
}

/** Starts the threads on config.port (already claimed) and resolves once every one listens. */
export async function startHandlerThreads(
  config: ServerConfig,
  buffer: SharedArrayBuffer,
  runtime: Runtime,
  log: Log,
): Promise<HandlerThreads> {
  const pool = new Piscina({
    filename: new URL('../workers/http-worker.js', import.meta.url).href,
    minThreads: runtime.threadCount,
    maxThreads: runtime.threadCount,
    concurrentTasksPerWorker: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
    maxQueue: runtime.threadCount,
  })
  const control = new BroadcastChannel(controlChannelName)
  let listeningCount = 0
  const allListening = new Promise<void>((resolve) => {
    control.onmessage = (event: MessageEvent) => {
      if (
        (event.data as { type?: string }).type === 'listening' &&
        ++listeningCount === runtime.threadCount
      )
        resolve()
    }
  })
  const requestTimes = createRequestTimesBuffer(runtime.threadCount)
  const task: HttpWorkerTask = { buffer, config, runtime, requestTimes }
  const tasks = Array.from({ length: runtime.threadCount }, () => pool.run(task))
  let stopping = false
  const stop = async () => {
    stopping = true
    control.postMessage({ type: 'stop' })
    await Promise.allSettled(tasks)
    control.close()
    await pool.destroy()
  }
  // A thread that fails to start (a port taken between the check and the bind, say) rejects
  // its task; that fails the start, and the threads that did start are stopped so the process
  // can exit.
  try {
    await Promise.race([
      allListening,
      ...tasks.map((done) =>
        done.then(() => Promise.reject(new Error('a handler thread stopped early'))),
      ),
    ])
  } catch (error) {
    await stop()
    throw error
  }
  // A handler thread that dies while serving is a bug; the process exits and recovery rebuilds
  // the state on the next start. It says why first: the thread's own error would go unseen.
  for (const done of tasks) {
    done.then(
      () => {
        if (stopping) return
        log.error('a handler thread stopped while serving: exiting')
        process.exit(exitFailed)
      },
      (error: unknown) => {
        log.error('a handler thread failed: exiting', {
          error: String(error),
          stack: (error as Error | undefined)?.stack,
        })
        process.exit(exitFailed)
      },
    )
  }
  return { stop }
}
