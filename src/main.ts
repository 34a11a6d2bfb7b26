import { mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import { createServer as createNetServer, type ListenOptions } from 'node:net'
import { Piscina } from 'piscina'
import type { HttpWorkerTask } from '../workers/http-worker.js'
import { type ServerConfig, storeLimitsOf } from './config.js'
import type { Durability } from './durability.js'
import { type App, createApp, type Runtime } from './http/app.js'
import { createHttpServer } from './http/server.js'
import type { Log } from './log.js'
import { Store } from './store/store.js'
import { verifyStore } from './store/verify.js'
import { lockDataDir } from './wal/dir-lock.js'
import { logDurability } from './wal/durability.js'
import { recover, replayInto } from './wal/recovery.js'
import { WalRing } from './wal/ring.js'
import { realStorage } from './wal/storage.js'
import { startWalWriterThread, type WalWriterThread } from './wal/writer-thread.js'

// Wiring only, top to bottom: config → buffer → recovery → WAL writer thread → handler threads
// → serve. Node ≥ 22.12 runs the app in every thread of a Piscina pool, each listening on the
// same port with reusePort so the kernel spreads connections; Node 20 cannot share a port
// between threads (EADDRINUSE), so there the main thread serves.

export const controlChannelName = 'slabkv-control'

export function supportsReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 12)
}

export interface Running {
  url: string
  /** Stops accepting, lets in-flight requests finish (up to the shutdown timeout), releases everything. */
  stop(): Promise<void>
}

/** `slabkv serve` exits with this when the log fails (a failed sync); see also walExitCorrupt. */
export const exitStorageFailed = 5

export async function start(config: ServerConfig, log: Log): Promise<Running> {
  mkdirSync(config.dataDir, { recursive: true })
  // Before recovery reads the log: a second server must not touch the first one's files.
  const unlockDataDir = lockDataDir(config.dataDir)
  try {
    const running = await startOnDataDir(config, log)
    return {
      url: running.url,
      stop: async () => {
        try {
          await running.stop()
        } finally {
          unlockDataDir()
        }
      },
    }
  } catch (error) {
    unlockDataDir()
    throw error
  }
}

async function startOnDataDir(config: ServerConfig, log: Log): Promise<Running> {
  const recovering = Store.create({ limits: storeLimitsOf(config) })
  let progressLoggedSize = 0
  // Throws CorruptLogError on corruption: the CLI exits with walExitCorrupt.
  const recovery = recover(realStorage, config.dataDir, replayInto(recovering), (bytesRead) => {
    // Progress for big logs only: a line per recoveryProgressSize read.
    if (bytesRead >= progressLoggedSize + recoveryProgressSize) {
      progressLoggedSize = bytesRead
      log.info('recovering', { bytesRead })
    }
  })
  const { logSize, ...recovered } = recovery
  if (recovery.tornBytesCut > 0) {
    log.warn('cut a torn tail off the log: the bytes a crash left half-written', {
      bytes: recovery.tornBytesCut,
      keptIn: recovery.brokenFiles,
      ...(recovery.tornBytesNotKept > 0 && {
        notKept: `the disk is full: ${recovery.tornBytesNotKept} bytes (never acknowledged) were cut without a copy`,
      }),
    })
  }
  log.info('recovered', { ...recovered, entryCount: recovering.stats().entryCount })
  const wal = await startWalWriter(config, recovering, logSize, log)
  // Every mutation from here on goes to the log, in lock order, through the ring.
  const ring = new WalRing(recovering.views)
  const store = Store.attach(recovering.buffer, {
    onMutation: (record) => ring.append(record),
    logRoom: ring,
  })
  const durability = logDurability(store.views)
  const threaded = supportsReusePort()
  const runtime: Runtime = {
    mode: threaded ? 'handler-threads' : 'main-thread',
    threadCount: threaded ? config.threadCount : 1,
    startedAtMs: Date.now(),
    ready: false,
    recovery: recovered,
    fsync: config.fsync,
  }
  // Expired entries nobody touches are reclaimed here, a bounded number at a time, so one
  // sweep never holds the lock for long.
  // Not while the log cannot take writes: the expiries would only queue up in the ring.
  const sweepTimer = setInterval(() => {
    // Never waiting for the lock: this thread must stay free to notice a dead WAL writer.
    if (durability.refusal() === undefined) store.trySweep(1000)
  }, config.sweepIntervalMs)
  sweepTimer.unref()

  let running: { url: string; stop(): Promise<void> }
  try {
    running = threaded
      ? await serveOnThreads(config, store, runtime, log)
      : await serveOnMainThread(config, store, durability, runtime, log)
  } catch (error) {
    clearInterval(sweepTimer)
    await wal.stop()
    throw error
  }
  runtime.ready = true
  log.info('listening', {
    url: running.url,
    mode: runtime.mode,
    threads: runtime.threadCount,
    node: process.version,
    ...(threaded ? {} : { why: 'Node < 22.12 cannot share a port between threads (reusePort)' }),
    limits: config.limits,
    bodySizeMax: config.bodySizeMax,
    auth: config.token !== undefined,
    dataDir: config.dataDir,
    fsync: config.fsync,
  })
  return {
    url: running.url,
    stop: async () => {
      runtime.ready = false
      clearInterval(sweepTimer)
      await running.stop()
      await wal.stop()
      // A testing aid: end-to-end tests check the buffer of a real server once it has drained.
      if (process.env.SLABKV_VERIFY_ON_EXIT === '1') {
        log.info('verified', { problems: verifyStore(store.buffer), stats: store.stats() })
      }
    },
  }
}

/** An HTTP server for the app's fetch handler, listening; reusePort lets threads share a port. */
export async function listen(
  fetch: App['fetch'],
  config: ServerConfig,
  reusePort: boolean,
  log: Log,
): Promise<Server> {
  const server = createHttpServer(fetch, config, log)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // reusePort is missing from @types/node 20's ListenOptions; Node ≥ 22.12 honours it.
    const options = { port: config.port, host: config.host, ...(reusePort && { reusePort: true }) }
    server.listen(options as ListenOptions, () => resolve())
  })
  return server
}

/**
 * Fails with EADDRINUSE, as a single listener would, when something already listens on the
 * port. The handler threads bind with reusePort, and Linux lets any socket with reusePort from
 * the same user join a port: without this check, a second slabkv started on the port would
 * silently share its connections with the first. A plain bind is refused by every listener,
 * reusePort or not. (Two servers starting in the same instant can still both pass.)
 */
async function ensurePortFree(config: ServerConfig): Promise<void> {
  const probe = createNetServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen({ port: config.port, host: config.host }, () => resolve())
  })
  await new Promise<void>((resolve) => probe.close(() => resolve()))
}

/**
 * Starts the WAL writer thread and waits until its segment is open. If the thread dies (a
 * failed sync, a bug, anything), the log is marked failed so that pending writes are answered
 * 503, and the process exits: recovery on the next start decides from what is on disk.
 */
function startWalWriter(
  config: ServerConfig,
  store: Store,
  logSizeSinceSnapshot: number,
  log: Log,
): Promise<WalWriterThread> {
  return startWalWriterThread({
    buffer: store.buffer,
    dir: config.dataDir,
    fsync: config.fsync,
    segmentSizeMax: config.segmentSizeMax,
    snapshotLogSizeMin: config.snapshotLogSizeMin,
    noSpaceRetryMs: config.noSpaceRetryMs,
    logSizeSinceSnapshot,
    onEvent: (message, fields) => log.info(message, fields),
    onDeath: ({ error, exitCode }) => {
      log.error('the WAL writer failed: exiting; recovery runs on the next start', {
        error: error?.message,
        code: (error as { code?: unknown } | undefined)?.code,
        exitCode,
      })
      // A moment for the handler threads to answer the pending writes 503.
      setTimeout(() => process.exit(exitStorageFailed), failStopGraceMs)
    },
  })
}

const recoveryProgressSize = 64 * 1024 * 1024

/** How long a failed log waits before the process exits, so pending writes get their 503. */
const failStopGraceMs = 500

async function serveOnMainThread(
  config: ServerConfig,
  store: Store,
  durability: Durability,
  runtime: Runtime,
  log: Log,
) {
  const app = createApp({ store, config, durability, runtime, log })
  const server = await listen(app.fetch, config, false, log)
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  return {
    url: `http://${formatHost(config.host)}:${port}`,
    stop: () => closeGracefully(server, config.shutdownTimeoutMs),
  }
}

async function serveOnThreads(config: ServerConfig, store: Store, runtime: Runtime, log: Log) {
  if (config.port === 0)
    throw new Error('--port 0 needs single-thread mode: every thread must bind the same port')
  await ensurePortFree(config)
  const pool = new Piscina({
    filename: new URL('../workers/http-worker.js', import.meta.url).href,
    minThreads: runtime.threadCount,
    maxThreads: runtime.threadCount,
    // Each thread runs one task for the server's whole life.
    concurrentTasksPerWorker: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
    maxQueue: runtime.threadCount,
  })
  const listening = new BroadcastChannel(controlChannelName)
  let listeningCount = 0
  const allListening = new Promise<void>((resolve) => {
    listening.onmessage = (event: MessageEvent) => {
      if (
        (event.data as { type?: string }).type === 'listening' &&
        ++listeningCount === runtime.threadCount
      )
        resolve()
    }
  })
  const task: HttpWorkerTask = { buffer: store.buffer, config, runtime }
  const tasks = Array.from({ length: runtime.threadCount }, () => pool.run(task))
  let stopping = false
  const stop = async () => {
    stopping = true
    listening.postMessage({ type: 'stop' })
    await Promise.allSettled(tasks)
    listening.close()
    await pool.destroy()
  }
  // A thread that fails to start (a port in use, say) rejects its task; that fails the start,
  // and the threads that did start are stopped so the process can exit.
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
        process.exit(1)
      },
      (error: unknown) => {
        log.error('a handler thread failed: exiting', {
          error: String(error),
          stack: (error as Error | undefined)?.stack,
        })
        process.exit(1)
      },
    )
  }
  return { url: `http://${formatHost(config.host)}:${config.port}`, stop }
}

export async function closeGracefully(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // close() stops accepting and closes the connections idle at that moment; requests in flight
  // finish. A kept-alive connection whose request finishes afterwards would otherwise stay
  // open until its keep-alive timeout, so idle connections are closed again every few ms.
  // Past the shutdown timeout, whatever is left is cut.
  const sweeper = setInterval(() => server.closeIdleConnections(), drainPollMs)
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs)
  timer.unref()
  server.closeIdleConnections()
  await closed
  clearInterval(sweeper)
  clearTimeout(timer)
}

/** How often a draining server closes connections that have gone idle. */
const drainPollMs = 20

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
