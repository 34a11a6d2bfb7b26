import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { StorageFailedError } from '../../../src/durability.js'
import { I32 } from '../../../src/store/layout.js'
import { Mutex } from '../../../src/store/lock.js'
import { Store } from '../../../src/store/store.js'
import { logDurability } from '../../../src/wal/durability.js'
import { WalRing } from '../../../src/wal/ring.js'
import type * as WriterThread from '../../../src/wal/writer-thread.js'
import { assertBuilt, distUrl } from '../../support/dist.js'

// The WAL writer's real thread, on real files, ended the way a crash would end it (terminated,
// without passing through its own failure path): the main thread's side must notice, mark the
// log failed and wake every waiter, so that no write waits forever for a thread that is gone.
// The thread runs from dist/ (`npm test` builds first), and so does the module that starts it, so
// that the two agree on where the thread's script is.

const threadModule = 'src/wal/writer-thread.ts'
assertBuilt([threadModule, 'workers/wal-writer.ts', 'src/wal/writer.ts', 'src/wal/ring.ts'])
const { startWalWriterThread } = (await import(distUrl(threadModule).href)) as typeof WriterThread

const limits = {
  entryCountMax: 64,
  memorySizeMax: 64 * 1024,
  keySizeMax: 16,
  valueSizeMax: 256,
  headroomPerMille: 0,
}
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

async function startThread() {
  const dir = mkdtempSync(join(tmpdir(), 'slabkv-writer-thread-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const base = Store.create({ limits })
  const deaths: { error?: Error; exitCode?: number }[] = []
  const thread: WriterThread.WalWriterThread = await startWalWriterThread({
    buffer: base.buffer,
    dir,
    fsync: 'always',
    segmentSizeMax: 1024 * 1024,
    snapshotLogSizeMin: 1024 * 1024,
    noSpaceRetryMs: 1000,
    historySizeRetained: 0,
    logSizeSinceSnapshot: 0,
    onEvent: () => {},
    onDeath: (cause) => deaths.push(cause),
  })
  cleanups.push(() => thread.worker.terminate().then(() => undefined))
  const ring = new WalRing(base.views)
  const store = Store.attach(base.buffer, {
    onMutation: (r) => ring.append(r),
    onUnlocked: () => ring.wakeWriterIfAppended(),
    logRoom: ring,
  })
  return { thread, store, durability: logDurability(base.views), deaths }
}

describe('the WAL writer thread', () => {
  it('makes writes durable while it runs, and stops cleanly without a death', async () => {
    const { thread, store, durability, deaths } = await startThread()
    const result = store.set('a', new TextEncoder().encode('durable'))
    expect(result.ok).toBe(true)
    await durability.waitFor(store.sequence)
    await thread.stop()
    expect(deaths).toEqual([])
  })

  it('fails every waiting write with StorageFailedError when the thread ends without its failure path', async () => {
    const { thread, store, durability, deaths } = await startThread()
    store.set('a', new TextEncoder().encode('durable'))
    await durability.waitFor(store.sequence)
    // A write nothing will make durable: the thread is about to go.
    const pending = durability.waitFor(store.sequence + 1)
    expect(pending).toBeInstanceOf(Promise)
    const roomWait = durability.announceLogRoomWait()
    await thread.worker.terminate()
    await expect(pending).rejects.toBeInstanceOf(StorageFailedError)
    await roomWait // Woken, not left to its timeout alone.
    expect(deaths).toHaveLength(1)
    expect(durability.refusal()).toBe('storage_failed')
    // New writes are refused at once (the HTTP layer answers 503), and nothing is numbered.
    const sequence = store.sequence
    expect(store.set('b', new Uint8Array(1))).toEqual({ ok: false, code: 'log_full' })
    expect(store.sequence).toBe(sequence)
  })

  it('releases the store lock the thread held when it ended inside its snapshot copy', async () => {
    const { thread, store, deaths } = await startThread()
    const header = store.views.headerI32
    // What the writer does around its snapshot copy (test/unit/wal-writer.test.ts checks that it
    // does): the lock won, then the flag set. The thread ends right there, as an out-of-memory
    // kill would end it, and runs nothing more.
    expect(new Mutex(header, I32.lock).tryLock()).toBe(true)
    Atomics.store(header, I32.walWriterHoldsLock, 1)
    await thread.worker.terminate()
    await expect.poll(() => deaths.length).toBe(1)
    expect(store.tryExclusively(() => true)).toEqual({ value: true })
    expect(Atomics.load(header, I32.walWriterHoldsLock)).toBe(0)
  })
})
