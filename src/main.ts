import { mkdirSync } from 'node:fs'
import { type ServerConfig, storeLimitsOf } from './config.js'
import { exitStorageFailed } from './exit-codes.js'
import { startHandlerThreads } from './handler-threads.js'
import type { Runtime } from './http/deps.js'
import { claimPort, formatHost, supportsReusePort } from './http/listen.js'
import type { Log } from './log.js'
import { startCurveService } from './mrc/channel.js'
import { Store } from './store/store.js'
import { verifyStore } from './store/verify.js'
import { lockDataDir, type StaleLock } from './wal/dir-lock.js'
import { attachLoggedStore } from './wal/logged-store.js'
import { type RecoveryReport, recover, replayInto } from './wal/recovery.js'
import { realStorage } from './wal/storage.js'
import { startWalWriterThread, type WalWriterThread } from './wal/writer-thread.js'

// Wiring only, top to bottom: config → port → data directory → buffer → recovery → WAL writer
// thread → handler threads. The main thread serves no request: it recovers, watches the writer
// thread and the handler threads, and sweeps expired entries.

export interface Running {
  url: string
  /** Stops accepting, lets in-flight requests finish (up to the shutdown timeout), releases everything. */
  stop(): Promise<void>
}

/** Handler threads share one port with reusePort, which Node has only from 22.12. */
export class NodeTooOldError extends Error {}

export async function start(config: ServerConfig, log: Log): Promise<Running> {
  if (!supportsReusePort()) {
    throw new NodeTooOldError(
      `slabkv needs Node >= 22.12 (its handler threads share one port with reusePort); this is ` +
        `Node ${process.version}. npm start and npx slabkv run the Node 24 that npm install brings`,
    )
  }
  // Before anything touches the disk: a start that cannot serve must leave nothing behind.
  const port = await claimPort(config)
  const served = { ...config, port }
  mkdirSync(config.dataDir, { recursive: true })
  // Before recovery reads the log: a second server must not touch the first one's files.
  let staleLock: StaleLock | undefined | null = null
  const unlockDataDir = lockDataDir(config.dataDir, (stale) => {
    staleLock = stale
  })
  try {
    const running = await startOnDataDir(served, log, (recovery) => {
      if (staleLock !== null) logUncleanStop(log, staleLock, recovery)
    })
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

/**
 * A lock left behind means the previous server did not stop cleanly (kill -9, a crash, a power
 * loss): say so, whose it was, and what recovery did about it, so that an operator reading the
 * log after an incident need not infer it from a torn tail.
 */
function logUncleanStop(log: Log, stale: StaleLock | undefined, recovery: RecoveryReport): void {
  log.warn('the previous server did not stop cleanly: took over its data directory lock', {
    previousPid: stale?.pid ?? null,
    lockTakenOverBecause: stale?.why ?? 'it names no process',
    recordsReplayed: recovery.recordsReplayed,
    tornBytesCut: recovery.tornBytesCut,
    snapshotLoaded: recovery.snapshot,
  })
}

async function startOnDataDir(
  config: ServerConfig,
  log: Log,
  onRecovered: (recovery: RecoveryReport) => void,
): Promise<Running> {
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
  onRecovered(recovered)
  const wal = await startWalWriter(config, recovering, logSize, log)
  // Every mutation from here on goes to the log, in lock order, through the ring.
  const { store, durability } = attachLoggedStore(recovering.buffer)
  const runtime: Runtime = {
    threadCount: config.threadCount,
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
  // Started before the threads, so that the curve counts every access they serve.
  const curve = config.missRatioCurve ? startCurveService(store.views) : undefined

  let threads: Awaited<ReturnType<typeof startHandlerThreads>>
  try {
    threads = await startHandlerThreads(config, store.buffer, runtime, log)
  } catch (error) {
    clearInterval(sweepTimer)
    curve?.stop()
    await wal.stop()
    throw error
  }
  runtime.ready = true
  const url = `http://${formatHost(config.host)}:${config.port}`
  log.info('listening', {
    url,
    threads: runtime.threadCount,
    node: process.version,
    limits: config.limits,
    bodySizeMax: config.bodySizeMax,
    auth: config.token !== undefined,
    dataDir: config.dataDir,
    fsync: config.fsync,
  })
  return {
    url,
    stop: async () => {
      runtime.ready = false
      clearInterval(sweepTimer)
      curve?.stop()
      await threads.stop()
      await wal.stop()
      // A testing aid: end-to-end tests check the buffer of a real server once it has drained.
      if (process.env.SLABKV_VERIFY_ON_EXIT === '1') {
        log.info('verified', { problems: verifyStore(store.buffer), stats: store.stats() })
      }
    },
  }
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
    historySizeRetained: config.watchHistorySize,
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
