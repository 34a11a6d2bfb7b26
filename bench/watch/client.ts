import { Agent, request } from 'node:http'
import { Watcher, type WatcherState } from './stream.js'

// The watchers' process, started by bench/watch.ts with fork and driven over its IPC channel:
// one request, one answer, by id. It is a process of its own so that the watchers compete with
// the server for the machine's cores as real consumers would, apart from the load generator
// (wrk) and from the benchmark's own process.
//
// - open: opens watchers and answers once each has its first block (its start id).
// - mark: notes each watcher's event and chunk counts now (the live events/s, and the events
//   per chunk, are between two marks); with
//   `from`, only events with a higher id count from then on (the window: after the start marker).
// - finish: waits until every watcher has an id >= `to` (the end marker; or the deadline),
//   closes them and answers what each saw. No write comes after the end marker, so the window
//   is (from, to].
// - latency: a paced writer and watchers in this one process, one clock: how long after a
//   write's acknowledgement its event reached each watcher.
// - drain: one watcher from an old sequence until it reaches `to`: events/s from the log.

export type Command =
  | { cmd: 'open'; url: string; prefix: string; count: number }
  | { cmd: 'mark'; from?: number }
  | { cmd: 'finish'; from: number; to: number; timeoutMs: number }
  | { cmd: 'latency'; url: string; watcherCount: number; rate: number; seconds: number }
  | { cmd: 'drain'; url: string; prefix: string; since: number; to: number; timeoutMs: number }

export interface Finished {
  /** Each watcher's state, and how long after the finish it reached `to` (null: never). */
  watchers: (WatcherState & { caughtUpMs: number | null; marks: number[] })[]
}

export interface LatencyResult {
  writes: number
  durationS: number
  /** Writes sent later than their slot by more than 10 ms (the writer could not keep pace). */
  lateWrites: number
  /** Pairs of (write, watcher) whose event never came before the deadline. */
  missing: number
  disorder: number
  ackToEventMs: number[]
  sendToEventMs: number[]
  sendToAckMs: number[]
}

export interface DrainResult {
  events: number
  lastId: number
  firstBlockMs: number
  /** From sending the request to the event with id >= to; null if the deadline came first. */
  doneMs: number | null
  disorder: number
  disorderSample: string
  ended: string | undefined
}

let watchers: Watcher[] = []
const marks = new Map<Watcher, number[]>()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function open(url: string, prefix: string, count: number): Promise<number> {
  const opened = Array.from({ length: count }, () => new Watcher({ url, prefix }))
  watchers.push(...opened)
  for (const watcher of opened) marks.set(watcher, [])
  await Promise.all(opened.map((watcher) => watcher.started))
  return opened.length
}

async function finish(from: number, to: number, timeoutMs: number): Promise<Finished> {
  const start = performance.now()
  const deadline = sleep(timeoutMs).then(() => 'late' as const)
  const result = await Promise.all(
    watchers.map(async (watcher) => {
      const reached = await Promise.race([watcher.reached(to).then(() => 'ok' as const), deadline])
      return { watcher, caughtUpMs: reached === 'ok' ? performance.now() - start : null }
    }),
  )
  const answer = result.map(({ watcher, caughtUpMs }) => {
    watcher.close()
    const { state } = watcher
    if (state.windowFrom !== from) throw new Error(`window from ${state.windowFrom}, not ${from}`)
    return { ...state, windowTo: to, caughtUpMs, marks: marks.get(watcher) ?? [] }
  })
  watchers = []
  marks.clear()
  return { watchers: answer }
}

/** Only events with from < id count in the window: set before any of them is written. */
function mark(from: number | undefined): void {
  for (const watcher of watchers) {
    marks.get(watcher)?.push(watcher.state.events, watcher.state.chunks)
    // Nothing above `from` is written before this answer: what the window holds so far is
    // the start marker's event or older, none of it in the window.
    if (from !== undefined) {
      watcher.state.windowFrom = from
      watcher.state.windowEvents = 0
      watcher.state.windowIdSum = 0
    }
  }
}

const sorted = (values: number[]) => values.sort((a, b) => a - b)

async function latency(
  url: string,
  watcherCount: number,
  rate: number,
  seconds: number,
): Promise<LatencyResult> {
  const arrivals = Array.from({ length: watcherCount }, () => new Map<number, number>())
  const opened = arrivals.map(
    (got) => new Watcher({ url, prefix: 'lat:', onEvent: (id, atMs) => got.set(id, atMs) }),
  )
  await Promise.all(opened.map((watcher) => watcher.started))
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  const body = Buffer.from('value:'.padEnd(100, 'x'))
  const sent = new Map<number, number>()
  const acked = new Map<number, number>()
  let lateWrites = 0
  let inFlight = 0
  let failure: string | undefined
  const write = (n: number, dueMs: number) => {
    const sentMs = performance.now()
    if (sentMs - dueMs > 10) lateWrites++
    inFlight++
    const req = request(`${url}/v1/kv/lat:${n % 10_000}`, {
      method: 'PUT',
      agent,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
    })
    req.once('response', (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        text += chunk
      })
      response.once('end', () => {
        const ackMs = performance.now()
        inFlight--
        const version = /^\{"version":(\d+)/.exec(text)?.[1]
        if ((response.statusCode !== 200 && response.statusCode !== 201) || !version) {
          failure ??= `PUT answered ${response.statusCode} ${text.slice(0, 200)}`
          return
        }
        sent.set(Number(version), sentMs)
        acked.set(Number(version), ackMs)
      })
    })
    req.once('error', (error) => {
      inFlight--
      failure ??= `PUT failed: ${error.message}`
    })
    req.end(body)
  }
  const startMs = performance.now()
  const total = Math.round(rate * seconds)
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      while (next < total && startMs + (next * 1000) / rate <= now) {
        write(next, startMs + (next * 1000) / rate)
        next++
      }
      if (next < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  while (inFlight > 0) await sleep(5)
  if (failure !== undefined) throw new Error(failure)
  const durationS = (performance.now() - startMs) / 1000
  agent.destroy()
  const newest = Math.max(...acked.keys())
  await Promise.race([Promise.all(opened.map((w) => w.reached(newest))), sleep(10_000)])
  const ackToEventMs: number[] = []
  const sendToEventMs: number[] = []
  let missing = 0
  for (const [version, ackMs] of acked) {
    for (const got of arrivals) {
      const atMs = got.get(version)
      if (atMs === undefined) missing++
      else {
        ackToEventMs.push(atMs - ackMs)
        sendToEventMs.push(atMs - sent.get(version)!)
      }
    }
  }
  const disorder = opened.reduce((sum, w) => sum + w.state.disorder, 0)
  for (const watcher of opened) watcher.close()
  return {
    writes: acked.size,
    durationS,
    lateWrites,
    missing,
    disorder,
    ackToEventMs: sorted(ackToEventMs),
    sendToEventMs: sorted(sendToEventMs),
    sendToAckMs: sorted([...acked].map(([v, ackMs]) => ackMs - sent.get(v)!)),
  }
}

async function drain(
  url: string,
  prefix: string,
  since: number,
  to: number,
  timeoutMs: number,
): Promise<DrainResult> {
  const startMs = performance.now()
  const watcher = new Watcher({ url, prefix, since })
  await watcher.started
  const firstBlockMs = performance.now() - startMs
  const reached = await Promise.race([
    watcher.reached(to).then(() => true),
    sleep(timeoutMs).then(() => false),
  ])
  const doneMs = reached ? performance.now() - startMs : null
  watcher.close()
  const { events, lastId, disorder, disorderSample, ended } = watcher.state
  return { events, lastId, firstBlockMs, doneMs, disorder, disorderSample, ended }
}

async function run(command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'open':
      return open(command.url, command.prefix, command.count)
    case 'mark':
      mark(command.from)
      return null
    case 'finish':
      return finish(command.from, command.to, command.timeoutMs)
    case 'latency':
      return latency(command.url, command.watcherCount, command.rate, command.seconds)
    case 'drain':
      return drain(command.url, command.prefix, command.since, command.to, command.timeoutMs)
  }
}

process.on('message', (message: { id: number; command: Command }) => {
  run(message.command).then(
    (result) => process.send!({ id: message.id, result }),
    (error: Error) => process.send!({ id: message.id, error: error.stack ?? String(error) }),
  )
})
process.on('disconnect', () => process.exit(0))
