import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { realStorage } from '../../src/wal/storage.js'
import { changeOps } from '../../src/watch/change.js'
import { ChangeFeed } from '../../src/watch/feed.js'
import { type WatchOptions, type WatchRequest, watchStream } from '../../src/watch/watcher.js'
import { openWal, walLimits } from './wal-harness.js'

// A thread's change feed over real log files that a real WAL writer (driven a step at a time)
// writes into a temporary directory, with no HTTP around it; and watch streams on it. What the
// feed and its streams report as problems and errors is collected for the test to check.

export interface FeedHarness {
  dir: string
  wal: ReturnType<typeof openWal>
  feed: ChangeFeed
  problems: { message: string; fields: Record<string, unknown> }[]
  streamErrors: unknown[]
  /** A stream on the feed; every kind of change, heartbeats a minute apart unless told. */
  stream(
    request: Partial<WatchRequest>,
    options?: Partial<WatchOptions>,
  ): ReadableStream<Uint8Array>
  /** Closes the feed and removes the directory. */
  cleanup(): void
}

export function feedHarness(
  bufferSize: number,
  options: { snapshotLogSizeMin?: number; valueSizeMax?: number } = {},
): FeedHarness {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-feed-'))
  const valueSizeMax = options.valueSizeMax ?? 4096
  const limits = {
    ...walLimits,
    entryCountMax: 1024,
    memorySizeMax: Math.max(1 << 20, 4 * valueSizeMax),
    valueSizeMax,
    walRingSize: Math.max(1 << 20, 4 * valueSizeMax),
  }
  const wal = openWal(
    {
      storage: realStorage,
      dir,
      snapshotLogSizeMin: options.snapshotLogSizeMin ?? 1 << 30,
      segmentSizeMax: 256 * 1024,
    },
    limits,
  )
  const problems: FeedHarness['problems'] = []
  const streamErrors: unknown[] = []
  const feed = new ChangeFeed({
    dir,
    views: wal.base.views,
    bufferSize,
    onProblem: (message, fields) => problems.push({ message, fields }),
  })
  return {
    dir,
    wal,
    feed,
    problems,
    streamErrors,
    stream: (request, streamOptions) =>
      watchStream(
        feed,
        { prefix: '', types: new Set(changeOps), values: false, after: 0, ...request },
        {
          dir,
          heartbeatMs: 60_000,
          onClose: () => {},
          onError: (error) => streamErrors.push(error),
          ...streamOptions,
        },
      ),
    cleanup: () => {
      feed.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
