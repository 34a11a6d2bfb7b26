import type { Views } from '../store/layout.js'
import { CurveCollector, type MissRatioCurve } from './collector.js'

// How the curve the main thread computes reaches the handler threads, and a reset reaches the
// main thread: a BroadcastChannel of its own. The curve is a few hundred bytes once a second,
// so a message copied to each thread costs less than a region of the shared buffer guarded
// against torn reads, and a thread that starts later gets it within a second.

export const curveChannelName = 'slabkv-miss-ratio-curve'

type CurveMessage = { type: 'curve'; curve: MissRatioCurve } | { type: 'reset' }

export interface CurveService {
  stop(): void
}

/**
 * The main thread's side: starts sampling, drains the access ring every `drainIntervalMs` (its
 * 32,768 records then cover ~300,000 sampled accesses a second), and publishes the curve every
 * `publishIntervalMs` and after a reset. Its timers never keep the process alive.
 */
export function startCurveService(
  views: Views,
  { drainIntervalMs = 100, publishIntervalMs = 1000 } = {},
): CurveService {
  const collector = new CurveCollector(views)
  const channel = new BroadcastChannel(curveChannelName)
  const publish = () => {
    collector.drain()
    channel.postMessage({ type: 'curve', curve: collector.curve() } satisfies CurveMessage)
  }
  channel.onmessage = (event: MessageEvent) => {
    if ((event.data as CurveMessage).type !== 'reset') return
    collector.reset()
    publish()
  }
  channel.unref()
  const drainTimer = setInterval(() => collector.drain(), drainIntervalMs)
  drainTimer.unref()
  const publishTimer = setInterval(publish, publishIntervalMs)
  publishTimer.unref()
  return {
    stop() {
      clearInterval(drainTimer)
      clearInterval(publishTimer)
      collector.stop()
      channel.close()
    },
  }
}

/** A handler thread's side: the latest curve published, and a way to ask for a reset. */
export class CurveSubscriber {
  #latest: MissRatioCurve | undefined
  readonly #channel = new BroadcastChannel(curveChannelName)

  constructor() {
    this.#channel.onmessage = (event: MessageEvent) => {
      const message = event.data as CurveMessage
      if (message.type === 'curve') this.#latest = message.curve
    }
    this.#channel.unref()
  }

  /** The latest curve, or undefined before the first one arrives (within a second of start). */
  get latest(): MissRatioCurve | undefined {
    return this.#latest
  }

  /** Asks the main thread to start the curve again; the next curve published is the new one. */
  reset(): void {
    this.#channel.postMessage({ type: 'reset' } satisfies CurveMessage)
  }

  close(): void {
    this.#channel.close()
  }
}
