import { threadId } from 'node:worker_threads'
import { controlChannelName, type HttpWorkerTask } from '../src/handler-threads.js'
import { createApp } from '../src/http/app.js'
import type { Runtime } from '../src/http/deps.js'
import { closeGracefully, listen } from '../src/http/listen.js'
import { RequestTimes } from '../src/http/request-times.js'
import { createLog } from '../src/log.js'
import { CurveSubscriber } from '../src/mrc/channel.js'
import { attachLoggedStore } from '../src/wal/logged-store.js'
import { ChangeFeed } from '../src/watch/feed.js'

// Piscina entry for one handler thread: attach to the shared buffer (its mutations go to the WAL
// ring, its acknowledgements wait on the durable sequence), build the app, listen on the shared
// port with reusePort, and serve until the main thread broadcasts stop. The task
// resolves once the server has drained, so the pool can be destroyed cleanly.

export default async function serve(task: HttpWorkerTask): Promise<void> {
  const { config } = task
  const log = createLog()
  const { store, durability } = attachLoggedStore(task.buffer)
  const runtime: Runtime = { ...task.runtime, ready: true }
  const changes = new ChangeFeed({
    dir: config.dataDir,
    views: store.views,
    bufferSize: config.watchBufferSize,
    onProblem: (message, fields) => log.error(message, fields),
  })
  const missRatioCurve = config.missRatioCurve ? new CurveSubscriber() : undefined
  const requestTimes = new RequestTimes(task.requestTimes)
  const app = createApp({
    store,
    config,
    durability,
    runtime,
    log,
    changes,
    missRatioCurve,
    requestTimes,
  })
  const server = await listen(app.fetch, config, log, requestTimes)
  const control = new BroadcastChannel(controlChannelName)
  const stopped = new Promise<void>((resolve) => {
    control.onmessage = (event: MessageEvent) => {
      if ((event.data as { type?: string }).type === 'stop') resolve()
    }
  })
  control.postMessage({ type: 'listening', threadId })
  await stopped
  runtime.ready = false
  // Watch streams never end by themselves: each is ended (saying where to resume) so that the
  // graceful close below need not wait for its timeout.
  changes.close()
  await closeGracefully(server, config.shutdownTimeoutMs)
  control.close()
  missRatioCurve?.close()
}
