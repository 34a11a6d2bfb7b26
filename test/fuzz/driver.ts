import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RawConnection, type RawResponse } from '../support/raw-http.js'
import { prng } from '../support/seed.js'
import { type RunningServer, startServer } from '../support/server.js'
import { batchStep } from './batch-step.js'
import { Choices, fuzzFlags, randomKey } from './inputs.js'
import { deleteStep, getStep, putStep } from './kv-steps.js'
import { checkListing } from './listing.js'
import { miscStep } from './misc-steps.js'
import { describeResponse, Mismatch, Model } from './model.js'
import { seedDeleteStep, seedGetStep, setStep } from './seed-steps.js'
import type { Partition, Step, StepContext } from './step.js'

// The generative whole-server test: several connections drive one real server process with
// seeded random requests over every route, each on keys only it touches, one request at a time
// or pipelined; between them the server is stopped with SIGTERM or killed with SIGKILL and
// started again on the same data directory. Every answer is checked against the model
// (src of truth: README's API section); after each restart every key is read back.

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
}

/** A read waits this long for an answer before the server counts as hung. */
const answerTimeoutMs = 15_000
/** A kept-alive connection idle this long is replaced before the server's 5 s timeout closes it. */
const idleReconnectMs = 2_000

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
  }
  const setup = new Choices(prng(options.seed))
  const partitions: Partition[] = Array.from({ length: options.connectionCount }, (_, i) => {
    const prefix = `p${String(i).padStart(2, '0')}/`
    const make = (count: number) =>
      Array.from({ length: count }, (_, n) => randomKey(setup, prefix, n === 0))
    return { prefix, stable: [...new Set(make(10))], ephemeral: [...new Set(make(3))] }
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

  /** Throws when the server died, or logged an error, without being told to stop. */
  const checkServer = () => {
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
    while (running()) {
      if (gate.closed) {
        connection?.destroy()
        connection = undefined
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
      if (lost || steps.at(-1)?.closes) {
        connection.destroy()
        connection = undefined
      }
      if (lost && !restarting) {
        checkServer()
        throw new Error(
          `a round got no complete answer from a running server: ${steps.map((s) => s.what).join('; ')}`,
        )
      }
      checkServer()
    }
    connection?.destroy()
    gate.finished(index)
  }

  const coordinator = async () => {
    const choices = new Choices(prng(options.seed ^ 0x5eed))
    let nextRestart = options.roundsPerRestart
    while (running()) {
      await sleep(20)
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
    else steps.push(miscStep(context, { closing: false }))
  }
  return steps
}

/**
 * Sends the round, pipelined when it has several requests, and checks each answer in order.
 * True when the connection ended before every answer came: the requests left unanswered may or
 * may not have been applied.
 */
async function playRound(
  connection: RawConnection,
  steps: Step[],
  report: FuzzReport,
): Promise<boolean> {
  const sentMs = Date.now()
  connection.write(Buffer.concat(steps.map((step) => step.request)))
  report.requests += steps.length
  for (const [index, step] of steps.entries()) {
    let response: RawResponse
    try {
      response = await connection.read({ head: step.head, timeoutMs: answerTimeoutMs })
    } catch (error) {
      if (!connection.closed) throw new Error(`${step.what}: ${(error as Error).message}`)
      for (const unanswered of steps.slice(index)) unanswered.unanswered()
      return true
    }
    report.statuses[response.status] = (report.statuses[response.status] ?? 0) + 1
    // The disk never fills or fails here, so not even the documented 503 and 507 are right,
    // but for /readyz, which says 503 while the server stops.
    if (response.status >= 500 && !(response.status === 503 && step.mayBeUnavailable)) {
      throw new Mismatch(`${step.what} answered ${describeResponse(response)}`)
    }
    step.check(response, { sentMs, receivedMs: Date.now() })
  }
  return false
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
      if (await playRound(connection, steps, report))
        throw new Error('the read-back lost its connection')
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
