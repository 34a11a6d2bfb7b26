import type { OpenAPIHono } from '@hono/zod-openapi'
import type { ServerConfig } from '../config.js'
import type { Durability } from '../durability.js'
import type { Log } from '../log.js'
import type { CurveSubscriber } from '../mrc/channel.js'
import type { Store } from '../store/store.js'
import type { RecoveryReport } from '../wal/recovery.js'
import type { FsyncMode } from '../wal/writer.js'
import type { ChangeFeed } from '../watch/feed.js'
import type { Evictions } from './evictions.js'
import type { RequestTimes } from './request-times.js'

// What the app is built from (src/http/app.ts) and what each route is handed: the routes import
// these types from here, so that nothing the app imports imports the app back.

export type App = OpenAPIHono

export interface Runtime {
  threadCount: number
  startedAtMs: number
  /** False while starting and once shutdown begins; /readyz reports it. */
  ready: boolean
  /** What recovery loaded at start (src/wal/recovery.ts); /v1/stats reports it. */
  recovery?: RecoveryReport
  fsync?: FsyncMode
}

export interface AppDeps {
  store: Store
  config: ServerConfig
  durability: Durability
  runtime: Runtime
  log: Log
  /** This thread's change feed (GET /v1/watch); absent for an app with no log (tests). */
  changes?: ChangeFeed
  /** The miss-ratio curve the main thread publishes; absent when it is off, or with no main thread (tests). */
  missRatioCurve?: Pick<CurveSubscriber, 'latest' | 'reset'>
  /** This thread's request-latency histogram (src/http/request-times.ts); createApp makes one when absent. */
  requestTimes?: RequestTimes
}

/** What the write routes get besides AppDeps: this app's (this thread's) eviction reporting. */
export interface RouteDeps extends AppDeps {
  evictions: Evictions
}
