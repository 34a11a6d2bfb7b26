import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prng } from '../support/random.js'
import { RawConnection, type RawResponse, rawRequest } from '../support/raw-http.js'
import { type RunningServer, startServer } from '../support/server.js'
import { batchStep } from './batch-step.js'
import { spellRequest } from './framing.js'
import { Choices, fuzzFlags, keySegment, limits, randomKey } from './inputs.js'
import { deleteStep, getStep, putStep } from './kv-steps.js'
import { checkListing } from './listing.js'
import { miscStep } from './misc-steps.js'
import { describeResponse, Mismatch, Model } from './model.js'
import { seedDeleteStep, seedGetStep, setStep } from './pykv-steps.js'
import type { Partition, Step, StepContext } from './step.js'

// The generative whole-server test: several connections drive one real server process with
// seeded random requests over every route, each on keys only it touches, one request at a time
// or pipelined; between them the server is stopped with SIGTERM or killed with SIGKILL and
// started again on the same data directory. Every answer is checked against the model
// (src of truth: docs/api.md); after each restart every key is read back.
//
// Around the answers, the server itself is watched: it must never exit unasked, log an error,
// or write anything on stderr, and its resident memory must stay within rssGrowthMaxMiB of what
// it was after each start, while clients that never read their answers and clients that close
// in the middle of a pipeline come and go.

export interface FuzzOptions {
  seed: number
  /** Stops after this many rounds in all (a round is one request, or several pipelined). */
  roundCountMax: number
  /** And in any case once this much time has passed. */
  durationMs: number
  connectionCount: number
  /** A restart comes after about this many rounds. */
  roundsPerRestart: number
  log: (line: string) => void
}

export interface FuzzReport {
  seed: number
  rounds: number
  requests: number
  restarts: { sigterm: number; sigkill: number }
  durationMs: number
  /** How many answers had each status. */
  statuses: Record<string, number>
  /** The most the server's resident memory grew past its reading after a start, in MiB. */
  rssGrowthPeakMiB: number
}

/** A read waits this long for an answer before the server counts as hung. */
const answerTimeoutMs = 15_000
/** A kept-alive connection idle this long is replaced before the server's 5 s timeout closes it. */
const idleReconnectMs = 2_000
/**
 * How far the server's resident memory may grow past its first reading after a start. Serving
 * this test takes tens of MiB (values are at most 48 KiB, the store a few MiB); a server that
 * built the answers of the clients that never read would hold unreadAnswerSizeMiB for each
 * (see unreadStep), which the clients' open sockets add up to well past this bound.
 */
const rssGrowthMaxMiB = 512
/** Connections a client keeps open without reading their answers. */
const unreadConnectionCountMax = 6
/** Pipelined batch reads a never-reading connection sends, each of batchReadSizeMax. */
const unreadRequestCount = 400
/** stderr lines a server may write (none: the structured log is stdout). */
const expectedStderr: RegExp[] = []

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const startedMs = Date.now()
  const deadline = startedMs + options.durationMs
  const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-fuzz-'))
  const flags = [...fuzzFlags, '--data-dir', dataDir]
  const model = new Model()
  const report: FuzzReport = {
    seed: options.seed,
    rounds: 0,
    requests: 0,
    restarts: { sigterm: 0, sigkill: 0 },
    durationMs: 0,
    statuses: {},
    rssGrowthPeakMiB: 0,
  }
  const setup = new Choices(prng(options.seed))
  const partitions: Partition[] = Array.from({ length: options.connectionCount }, (_, i) => {
    const prefix = `p${String(i).padStart(2, '0')}/`
    const make = (count: number) =>
      Array.from({ length: count }, (_, n) => randomKey(setup, prefix, n === 0))
    // The keys "." and ".." belong to the first two connections: whole dot segments in a path.
    const dots = ['.', '..'].slice(i, i + 1)
    return {
      prefix,
      stable: [...new Set([...make(10), ...dots])],
      ephemeral: [...new Set(make(3))],
    }
  })

  let server = await startServer(flags)
  let restarting = false
  let failure: Error | undefined
  const gate = new Gate()

  const fail = (error: unknown) => {
    failure ??= error instanceof Error ? error : new Error(String(error))
    // Clients waiting out a restart must see the failure and stop.
    gate.open()
  }
  const running = () =>
    failure === undefined && report.rounds < options.roundCountMax && Date.now() < deadline

  /** Throws when the server died, logged an error, or wrote on stderr, without being told to stop. */
  const checkServer = () => {
    const stderr = server
      .stderr()
      .split('\n')
      .filter((line) => line.trim() !== '' && !expectedStderr.some((pattern) => pattern.test(line)))
    if (stderr.length > 0)
      throw new Error(`the server wrote on stderr:\n${stderr.slice(0, 20).join('\n')}`)
    const { exitCode, signalCode } = server.process
    if (!restarting && (exitCode !== null || signalCode !== null)) {
      throw new Error(
        `the server exited (code ${exitCode}, signal ${signalCode}):\n${tail(server)}`,
      )
    }
    const errors = server.logs.filter((line) => line.level === 'error')
    if (errors.length > 0)
      throw new Error(`the server logged errors: ${JSON.stringify(errors.slice(0, 3))}`)
  }

  const client = async (index: number) => {
    const partition = partitions[index]!
    const choices = new Choices(prng(options.seed + 7919 * (index + 1)))
    const context: StepContext = { model, choices, partition, versions: { floor: 0 } }
    let connection: RawConnection | undefined
    let lastUsedMs = 0
    const unread: RawConnection[] = []
    const dropUnread = () => {
      for (const socket of unread.splice(0)) socket.destroy()
    }
    while (running()) {
      if (gate.closed) {
        connection?.destroy()
        connection = undefined
        dropUnread()
        await gate.pass(index)
        continue
      }
      if (
        connection === undefined ||
        connection.closed ||
        Date.now() - lastUsedMs > idleReconnectMs
      ) {
        connection?.destroy()
        connection = await RawConnection.open(server.port).catch(() => undefined)
        if (connection === undefined) {
          if (!restarting) throw new Error('cannot connect to the server')
          continue
        }
      }
      report.rounds++
      if (choices.chance(0.02)) {
        const socket = await RawConnection.open(server.port).catch(() => undefined)
        if (socket === undefined) {
          if (!restarting) throw new Error('cannot connect to the server')
          continue
        }
        socket.socket.pause()
        socket.write(unreadRequests(index))
        unread.push(socket)
        report.requests += unreadRequestCount + 1
        if (unread.length > unreadConnectionCountMax) unread.shift()?.destroy()
        continue
      }
      if (choices.chance(0.02)) {
        // A client that leaves mid-pipeline: reads, so that the requests it leaves behind
        // change nothing the model would have to place in time.
        const steps = Array.from({ length: choices.int(2, 6) }, () =>
          choices.chance(0.5) ? getStep(context, choices.chance(0.3)) : seedGetStep(context),
        )
        await playRound(connection, steps, report, choices.int(0, steps.length - 1))
        connection.destroy()
        connection = undefined
        lastUsedMs = Date.now()
        checkServer()
        continue
      }
      if (choices.chance(0.03)) {
        await checkListing(connection, context, model).catch((error) => {
          if (!(error instanceof Mismatch) && restarting) return
          throw error
        })
        lastUsedMs = Date.now()
        continue
      }
      const steps = buildRound(context)
      const lost = await playRound(connection, steps, report)
      lastUsedMs = Date.now()
      if (lost !== undefined || steps.at(-1)?.closes) {
        connection.destroy()
        connection = undefined
      }
      if (lost !== undefined && !restarting) {
        checkServer()
        throw new Error(
          `a round got no complete answer from a running server (${lost}): ` +
            `${steps.map((s) => s.what).join('; ')}\nthe server's output ends:\n${tail(server)}`,
        )
      }
      checkServer()
    }
    connection?.destroy()
    dropUnread()
    gate.finished(index)
  }

  const coordinator = async () => {
    const choices = new Choices(prng(options.seed ^ 0x5eed))
    let nextRestart = options.roundsPerRestart
    let rssStartMiB = rssMiB(server)
    while (running()) {
      await sleep(20)
      const rss = rssMiB(server)
      report.rssGrowthPeakMiB = Math.max(report.rssGrowthPeakMiB, Math.round(rss - rssStartMiB))
      if (rss > rssStartMiB + rssGrowthMaxMiB) {
        throw new Error(
          `the server's resident memory grew from ${rssStartMiB.toFixed(0)} to ${rss.toFixed(0)} MiB, past the ${rssGrowthMaxMiB} MiB allowed`,
        )
      }
      if (report.rounds < nextRestart) continue
      nextRestart += options.roundsPerRestart
      const signal = choices.chance(0.5) ? 'SIGTERM' : 'SIGKILL'
      restarting = true
      gate.close()
      // SIGKILL lands while clients are mid-round; SIGTERM lets the requests in flight finish.
      const code = await server.stop(signal)
      if (signal === 'SIGTERM' && code !== 0)
        throw new Error(`SIGTERM: exit code ${code}\n${tail(server)}`)
      checkServer()
      report.restarts[signal === 'SIGTERM' ? 'sigterm' : 'sigkill']++
      await gate.allWaiting(options.connectionCount)
      server = await startServer(flags)
      rssStartMiB = rssMiB(server)
      restarting = false
      await readBack(server, model, partitions, choices, report)
      checkServer()
      options.log(
        `restart ${report.restarts.sigterm + report.restarts.sigkill} (${signal}) after ${report.rounds} rounds: every key read back`,
      )
      gate.open()
    }
  }

  try {
    const clients = partitions.map((_, index) => client(index).catch(fail))
    await Promise.all([coordinator().catch(fail), ...clients])
    if (failure === undefined) {
      gate.open()
      await readBack(server, model, partitions, setup, report)
      checkServer()
    }
  } catch (error) {
    fail(error)
  } finally {
    gate.open()
    const code = await server.stop('SIGTERM')
    if (failure === undefined && code !== 0) fail(new Error(`the final SIGTERM: exit code ${code}`))
    rmSync(dataDir, { recursive: true, force: true })
  }
  report.durationMs = Date.now() - startedMs
  if (failure !== undefined) {
    failure.message = `seed ${options.seed} (replay with SEED=${options.seed}), after ${report.requests} requests: ${failure.message}`
    throw failure
  }
  return report
}

/** The requests of one round: one, or several to pipeline (a batch only ever comes first). */
function buildRound(context: StepContext): Step[] {
  const { choices } = context
  if (choices.chance(0.02)) return [miscStep(context, { closing: true })]
  const count = choices.chance(0.4) ? choices.int(2, 6) : 1
  const steps: Step[] = []
  // Steps about the server rather than the data test the Host and HTTP version themselves.
  const misc = new Set<Step>()
  if (choices.chance(0.15)) steps.push(batchStep(context))
  while (steps.length < count) {
    const roll = choices.int(0, 99)
    if (roll < 28) steps.push(putStep(context))
    else if (roll < 48) steps.push(getStep(context, false))
    else if (roll < 54) steps.push(getStep(context, true))
    else if (roll < 64) steps.push(deleteStep(context))
    else if (roll < 76) steps.push(setStep(context))
    else if (roll < 85) steps.push(seedGetStep(context))
    else if (roll < 90) steps.push(seedDeleteStep(context))
    else {
      const step = miscStep(context, { closing: false })
      misc.add(step)
      steps.push(step)
    }
  }
  // Chunked bodies, absolute-form targets and Expect on the steps about data. A request with
  // Expect may end its connection.
  return steps.map((step, index) => {
    if (misc.has(step)) return step
    const spelled = spellRequest(step, choices, { last: index === steps.length - 1, limits })
    return spelled.what.includes('Expect:') ? { ...spelled, closes: true } : spelled
  })
}

/**
 * What a client that never reads sends: a value of the largest size under a key of its own
 * (outside every partition), then batches each reading it twice, batchReadSizeMax of answer
 * apiece. A server that builds answers nobody takes holds about 38 MiB for each such client.
 */
function unreadRequests(client: number): Buffer {
  const key = `unread/${client}`
  const put = rawRequest(
    'PUT',
    `/v1/kv/${keySegment(key)}`,
    {},
    Buffer.alloc(limits.valueSizeMax, 0x61),
  )
  const ops = JSON.stringify({
    ops: [
      { op: 'get', key },
      { op: 'get', key },
    ],
  })
  const read = rawRequest('POST', '/v1/batch', { 'Content-Type': 'application/json' }, ops)
  return Buffer.concat([put, ...Array.from({ length: unreadRequestCount }, () => read)])
}

/** The server process's resident memory in MiB (its handler threads included). */
function rssMiB(server: RunningServer): number {
  try {
    const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
  } catch {
    return 0 // The process has exited; checkServer says so.
  }
}

/**
 * Sends the round, pipelined when it has several requests, and checks each answer in order, or
 * only the first answersWanted (the caller then closes the connection). When the connection
 * ended before every answer came, says how (the requests left unanswered may or may not have
 * been applied); undefined otherwise.
 */
async function playRound(
  connection: RawConnection,
  steps: Step[],
  report: FuzzReport,
  answersWanted = steps.length,
): Promise<string | undefined> {
  const sentMs = Date.now()
  connection.write(Buffer.concat(steps.map((step) => step.request)))
  report.requests += steps.length
  for (const [index, step] of steps.entries()) {
    if (index === answersWanted) return undefined
    let response: RawResponse
    try {
      response = await connection.read({ head: step.head, timeoutMs: answerTimeoutMs })
    } catch (error) {
      if (!connection.closed) throw new Error(`${step.what}: ${(error as Error).message}`)
      for (const unanswered of steps.slice(index)) unanswered.unanswered()
      return (
        `answers ${index} of ${steps.length} read, then ${connection.closeReason} ` +
        `${Date.now() - sentMs} ms after sending (${(error as Error).message})`
      )
    }
    report.statuses[response.status] = (report.statuses[response.status] ?? 0) + 1
    // The disk never fills or fails here, so not even the documented 503 and 507 are right,
    // but for /readyz, which says 503 while the server stops.
    if (response.status >= 500 && !(response.status === 503 && step.mayBeUnavailable)) {
      throw new Mismatch(`${step.what} answered ${describeResponse(response)}`)
    }
    step.check(response, { sentMs, receivedMs: Date.now() })
  }
  return undefined
}

/** Reads every key of every partition back, pipelined, and lists each partition. */
async function readBack(
  server: RunningServer,
  model: Model,
  partitions: Partition[],
  choices: Choices,
  report: FuzzReport,
): Promise<void> {
  const connection = await RawConnection.open(server.port)
  try {
    for (const partition of partitions) {
      const context: StepContext = { model, choices, partition, versions: { floor: 0 } }
      const steps = [...partition.stable, ...partition.ephemeral].map((key) =>
        getStep(context, false, key),
      )
      const lost = await playRound(connection, steps, report)
      if (lost !== undefined) throw new Error(`the read-back lost its connection: ${lost}`)
      await checkListing(connection, context, model)
    }
  } finally {
    connection.destroy()
  }
}

/** Where clients wait while the server restarts. */
class Gate {
  closed = false
  #waiting = new Set<number>()
  #finished = new Set<number>()
  #opened: Promise<void> = Promise.resolve()
  #open: () => void = () => {}
  #changed: () => void = () => {}

  close(): void {
    if (this.closed) return
    this.closed = true
    this.#opened = new Promise((resolve) => {
      this.#open = resolve
    })
  }

  open(): void {
    this.closed = false
    this.#waiting.clear()
    this.#open()
  }

  async pass(client: number): Promise<void> {
    this.#waiting.add(client)
    this.#changed()
    await this.#opened
  }

  /** A client that has stopped for good counts as waiting from now on. */
  finished(client: number): void {
    this.#finished.add(client)
    this.#changed()
  }

  /** Resolves once every client waits at the gate or has finished. */
  async allWaiting(count: number): Promise<void> {
    const deadline = Date.now() + answerTimeoutMs * 2
    const idle = () => new Set([...this.#waiting, ...this.#finished]).size
    while (idle() < count && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#changed = resolve
        setTimeout(resolve, 50)
      })
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function tail(server: RunningServer): string {
  return `${server.stdout().slice(-2000)}\n${server.stderr().slice(-2000)}`
}
