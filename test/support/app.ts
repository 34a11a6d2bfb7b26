import { resolveConfig } from '../../src/config.js'
import { type Durability, durabilityNone } from '../../src/durability.js'
import { createApp } from '../../src/http/app.js'
import type { Runtime } from '../../src/http/deps.js'
import { createLog } from '../../src/log.js'
import { I64, type StoreLimits, walRingSizeMin } from '../../src/store/layout.js'
import { Store } from '../../src/store/store.js'
import { logDurability } from '../../src/wal/durability.js'
import { WalRing } from '../../src/wal/ring.js'

// The app in process, for tests that go through app.request(): the configuration as flags would
// give it, a small store, quiet logs. Whatever a test needs to differ (flags, the durability,
// the runtime facts) it passes; the rest is the server's default.

export interface InProcessOptions {
  flags?: Record<string, string>
  /** The store's limits where they differ from this file's small store. */
  limits?: Partial<StoreLimits>
  durability?: Durability
  runtime?: Partial<Runtime>
}

const limits = {
  entryCountMax: 64,
  memorySizeMax: 64 * 1024,
  keySizeMax: 64,
  valueSizeMax: 1024,
  headroomPerMille: 0,
}

/** A store as large as a route test needs: the server's key and value limits, room for 10,000. */
export const routeTestLimits: Partial<StoreLimits> = {
  entryCountMax: 10_000,
  memorySizeMax: 8 * 1024 * 1024,
  keySizeMax: 1024,
  valueSizeMax: 1024 * 1024,
}

export function inProcessApp(options: InProcessOptions = {}) {
  return appOn(Store.create({ limits: { ...limits, ...options.limits }, hashSeed: 1 }), options)
}

/**
 * The app over a store whose changes go through a real WAL ring, with the durability the server
 * uses, and the test in the writer's place: it drains the ring and publishes what is durable.
 * The ring is the smallest the limits allow, so a few writes fill it.
 */
export function inProcessAppWithRing(options: Omit<InProcessOptions, 'durability'> = {}) {
  const base = Store.create({
    limits: { ...limits, walRingSize: walRingSizeMin(limits) },
    hashSeed: 1,
  })
  const ring = new WalRing(base.views)
  const store = Store.attach(base.buffer, {
    onMutation: (r) => ring.append(r),
    onUnlocked: () => ring.wakeWriterIfAppended(),
    logRoom: ring,
  })
  const durability = logDurability(base.views)
  const publish = (sequence: number) => {
    Atomics.store(base.views.headerI64, I64.durableSequence, BigInt(sequence))
    Atomics.notify(base.views.headerI64, I64.durableSequence)
  }
  /** What the writer does: takes everything the ring holds, and makes it durable. */
  const drain = () => {
    let sequence = Number(Atomics.load(base.views.headerI64, I64.durableSequence))
    for (let readable = ring.readable(); readable; readable = ring.readable()) {
      sequence = readable.sequenceLast
      ring.release(readable.end)
    }
    publish(sequence)
  }
  return { ...appOn(store, { ...options, durability }), ring, drain, publish }
}

function appOn(store: Store, options: InProcessOptions) {
  const resolved = resolveConfig(options.flags ?? {}, {})
  if (!resolved.ok) throw new Error(resolved.message)
  const config = { ...resolved.config, limits: store.layout.limits }
  const app = createApp({
    store,
    config,
    durability: options.durability ?? durabilityNone,
    runtime: {
      threadCount: 1,
      startedAtMs: Date.now(),
      ready: true,
      fsync: config.fsync,
      ...options.runtime,
    },
    log: createLog(() => {}),
  })
  /** A request to the app, as a client at the server's address would send it (fetch's shape). */
  const send = (url: string, init?: RequestInit) => Promise.resolve(app.request(url, init))
  return { app, store, config, send }
}
