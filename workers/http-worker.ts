import { threadId } from 'node:worker_threads'
import type { ServerConfig } from '../src/config.js'
import { durabilityNone } from '../src/durability.js'
import { createApp, type Runtime } from '../src/http/app.js'
import { createLog } from '../src/log.js'
import { closeGracefully, controlChannelName, listen } from '../src/main.js'
import { Store } from '../src/store/store.js'

// Piscina entry for one handler thread: attach to the shared buffer, build the app, listen on
// the shared port with reusePort, and serve until the main thread broadcasts stop. The task
// resolves once the server has drained, so the pool can be destroyed cleanly.

export interface HttpWorkerTask {
  buffer: SharedArrayBuffer
  config: ServerConfig
  threadCount: number
  startedAtMs: number
}

export default async function serve(task: HttpWorkerTask): Promise<void> {
  const { config } = task
  const log = createLog()
  const store = Store.attach(task.buffer)
  const runtime: Runtime = {
    mode: 'handler-threads',
    threadCount: task.threadCount,
    startedAtMs: task.startedAtMs,
    ready: true,
  }
  const app = createApp({ store, config, durability: durabilityNone, runtime, log })
  const server = await listen(app.fetch, config, true)
  const control = new BroadcastChannel(controlChannelName)
  const stopped = new Promise<void>((resolve) => {
    control.onmessage = (event: MessageEvent) => {
      if ((event.data as { type?: string }).type === 'stop') resolve()
    }
  })
  control.postMessage({ type: 'listening', threadId })
  await stopped
  runtime.ready = false
  await closeGracefully(server, config.shutdownTimeoutMs)
  control.close()
}
