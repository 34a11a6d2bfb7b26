import { resolveConfig } from '../../src/config.js'
import { type Durability, durabilityNone } from '../../src/durability.js'
import { createApp, type Runtime } from '../../src/http/app.js'
import { createLog } from '../../src/log.js'
import { Store } from '../../src/store/store.js'

// The app in process, for tests that go through app.request(): the configuration as flags would
// give it, a small store, quiet logs. Whatever a test needs to differ (flags, the durability,
// the runtime facts) it passes; the rest is the server's default.

export interface InProcessOptions {
  flags?: Record<string, string>
  durability?: Durability
  runtime?: Partial<Runtime>
}

export function inProcessApp(options: InProcessOptions = {}) {
  const resolved = resolveConfig(options.flags ?? {}, {})
  if (!resolved.ok) throw new Error(resolved.message)
  const limits = {
    entryCountMax: 64,
    memorySizeMax: 64 * 1024,
    keySizeMax: 64,
    valueSizeMax: 1024,
    headroomPerMille: 0,
  }
  const store = Store.create({ limits, hashSeed: 1 })
  const config = { ...resolved.config, limits: store.layout.limits }
  const app = createApp({
    store,
    config,
    durability: options.durability ?? durabilityNone,
    runtime: {
      mode: 'main-thread',
      threadCount: 1,
      startedAtMs: Date.now(),
      ready: true,
      fsync: config.fsync,
      ...options.runtime,
    },
    log: createLog(() => {}),
  })
  return { app, store, config }
}
