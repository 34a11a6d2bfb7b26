import assert from 'node:assert/strict'
import { createRoute, z } from '@hono/zod-openapi'
import {
  codeOfStoreError,
  type ErrorCode,
  entryRefusal,
  keyRefusal,
  valueRefusal,
} from '../../errors.js'
import type { BatchChange, Entry, SetOptions, StoreTransaction } from '../../store/types.js'
import type { App, RouteDeps } from '../deps.js'
import { evictedHeader, evictedHeaderDoc } from '../evictions.js'
import { jsonArrayStream } from '../json-stream.js'
import { bodySizeOf, decodeMediaType, encodeMediaType, mediaTypeRefusal } from '../media-type.js'
import { timedAs } from '../request-times.js'
import { logRefusalResponses, problemContent, problemResponse, whenLogged } from '../respond.js'
import { markApplied } from '../server.js'
import { isTtlSeconds, ttlRefusal } from '../ttl.js'
import { valueText } from '../value-text.js'

// POST /v1/batch: many ops in one request, under one lock hold. Every condition is checked
// against the state before the batch, and only if all hold is anything applied: all or
// nothing, as etcd's transactions compare first and then act. Everything that can be checked
// without the lock (key sizes, encodings, TTLs) is checked before taking it. What the batch
// reads is bounded too (--max-batch-read-size): its answer is held in memory until sent, and a
// large one is sent as the connection takes it, not built as one string.

const keySchema = z.string()
const opSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('get'), key: keySchema }),
  z.object({
    op: z.literal('set'),
    key: keySchema,
    value: z.string(),
    encoding: z.enum(['utf8', 'base64']).optional(),
    contentType: z.string().optional(),
    ttl: z.number().optional().openapi({ description: 'Seconds to live, > 0' }),
    ifVersion: z.number().int().optional(),
    ifAbsent: z.boolean().optional(),
  }),
  z.object({ op: z.literal('delete'), key: keySchema, ifVersion: z.number().int().optional() }),
])
type Op = z.infer<typeof opSchema>

const batchRoute = createRoute({
  method: 'post',
  path: '/v1/batch',
  operationId: 'runBatch',
  middleware: timedAs('runBatch'),
  summary: 'Run many ops atomically: all conditions hold and every op applies, or nothing does',
  request: {
    body: {
      required: true,
      content: { 'application/json': { schema: z.object({ ops: z.array(opSchema) }) } },
    },
  },
  responses: {
    200: {
      description: 'One result per op, in order',
      headers: { [evictedHeader]: evictedHeaderDoc },
      content: {
        'application/json': {
          schema: z.object({ results: z.array(z.record(z.string(), z.unknown())) }),
        },
      },
    },
    400: {
      description: 'An invalid op or body (the problem names the op by `index`); nothing applied',
      content: problemContent,
    },
    412: {
      description: 'A condition failed (the problem names the op by `index`); nothing applied',
      content: problemContent,
    },
    413: {
      description:
        'Too many ops (--max-batch-ops), a value too large, reads over --max-batch-read-size, or the body over --max-body-size; nothing applied',
      content: problemContent,
    },
    ...logRefusalResponses,
  },
})

interface PreparedSet {
  value: Uint8Array
  /** The value as the client sent it, without an inline media type: what the limit applies to. */
  bodySize: number
  options: SetOptions
}

export function registerBatchRoute(
  app: App,
  { store, config, durability, evictions }: RouteDeps,
): void {
  app.openapi(batchRoute, async (c) => {
    const { ops } = c.req.valid('json')
    const refusal = durability.refusal()
    if (refusal !== undefined && ops.some((op) => op.op !== 'get')) {
      return problemResponse(refusal)
    }
    if (ops.length > config.batchOpCountMax) {
      const detail = `The batch has ${ops.length} ops; the limit is ${config.batchOpCountMax} (--max-batch-ops)`
      return problemResponse('batch_too_large', detail)
    }
    const prepared: (PreparedSet | undefined)[] = []
    for (const [index, op] of ops.entries()) {
      const keyError = store.checkKey(op.key)
      if (keyError !== undefined) {
        const detail = keyRefusal(keyError, op.key, config.limits)
        return problemResponse(codeOfStoreError(keyError), detail, { index })
      }
      if (op.op !== 'set') {
        prepared.push(undefined)
        continue
      }
      const set = prepareSet(op)
      if ('code' in set) {
        return problemResponse(set.code, `op ${index}: ${set.detail}`, { index })
      }
      if (set.bodySize > config.limits.valueSizeMax) {
        const detail = `op ${index}: ${valueRefusal(set.bodySize, config.limits)}`
        return problemResponse('value_too_large', detail, { index })
      }
      const entrySize = Buffer.byteLength(op.key, 'utf8') + set.value.byteLength
      if (entrySize > config.limits.memorySizeMax) {
        const mediaTypeSize = set.value.byteLength - set.bodySize
        const detail = `op ${index}: ${entryRefusal(entrySize - mediaTypeSize, config.limits, mediaTypeSize)}`
        return problemResponse('value_too_large', detail, { index })
      }
      prepared.push(set)
    }

    const changes: BatchChange[] = ops.map((op, index) =>
      op.op === 'set'
        ? { op: 'set', key: op.key, valueSize: prepared[index]!.value.byteLength }
        : { op: op.op, key: op.key },
    )
    const writes = changes.some((change) => change.op !== 'get')
    const run = () => {
      const outcome = store.atomically((tx) => {
        for (const [index, op] of ops.entries()) {
          if (op.op === 'get') continue
          const version =
            op.ifVersion !== undefined || (op.op === 'set' && op.ifAbsent)
              ? tx.peekVersion(op.key)
              : undefined
          if (op.ifVersion !== undefined && version !== op.ifVersion) return { failedIndex: index }
          if (op.op === 'set' && op.ifAbsent && version !== undefined) {
            return { failedIndex: index }
          }
        }
        const earlyReads = readsWithin(tx, ops, prepared, config.batchReadSizeMax)
        if (earlyReads === undefined) return { readsTooLarge: true as const }
        // Room in the store and in the log for every change, before the first one applies.
        if (writes) {
          const ready = tx.prepare(changes)
          if (!ready.ok) return ready.code === 'log_full' ? ready.code : { tooLarge: true }
        }
        return applyAll(tx, earlyReads)
      })
      // A batch of writes is durable only with the commit record that closes its group (read
      // now, before another request of this thread can run): without it a crash drops it all.
      if (typeof outcome === 'object' && 'results' in outcome && writes) {
        outcome.sequenceMax = Math.max(outcome.sequenceMax, store.commitSequence)
      }
      return outcome
    }
    const applyAll = (tx: StoreTransaction, earlyReads: (Entry | undefined)[]) => {
      let sequenceMax = 0
      const results = ops.map((op, index) => {
        // Reads keep the entry as is: encoding it for JSON waits until the lock is released.
        if (op.op === 'get') {
          return (
            (index < earlyReads.length ? earlyReads[index] : tx.get(op.key)) ?? { found: false }
          )
        }
        if (op.op === 'delete') {
          const result = tx.delete(op.key)
          if (result.ok) sequenceMax = result.sequence
          return { deleted: result.ok }
        }
        const set = prepared[index]!
        // Conditions were checked above against the state before the batch, keys, sizes and
        // TTLs before the lock was taken, and prepare() made room: no refusal is left, so no
        // batch half-applies.
        const result = tx.set(op.key, set.value, set.options)
        assert(result.ok, 'a checked batch set was refused')
        sequenceMax = result.version
        return { version: result.version }
      })
      return { results, sequenceMax }
    }
    // A batch of reads is served while the log cannot take writes; it never waits for room.
    const { tally, attempt } = evictions.counting(run)
    const outcome = writes ? await whenLogged(durability, attempt) : run()
    // A batch of reads holds the connection until its answer has left, as a GET does.
    if (writes) markApplied(c)
    evictions.report(c, tally)
    assert(outcome !== 'log_full', 'a batch of reads found the log full')
    if (typeof outcome === 'string') return problemResponse(outcome)
    if ('readsTooLarge' in outcome) {
      const detail = `The values this batch reads come to more than ${config.batchReadSizeMax} bytes, the limit (--max-batch-read-size); nothing was applied`
      return problemResponse('batch_read_too_large', detail)
    }
    if ('tooLarge' in outcome) {
      return problemResponse(
        'batch_too_large',
        "The batch's own entries need more than the store holds at once (--max-memory, " +
          '--max-entries), or its log records more than the log ring holds (--wal-ring-size)',
      )
    }
    if ('failedIndex' in outcome) {
      // The failed condition reveals state, which may be a write not yet durable.
      await durability.waitFor(store.sequence)
      return problemResponse(
        'precondition_failed',
        `The condition of op ${outcome.failedIndex} failed; nothing was applied`,
        {
          index: outcome.failedIndex,
        },
      )
    }
    // Everything the batch wrote, every version its reads returned, and the latest removal
    // (which may be why a read found nothing) must be durable before anyone sees them.
    let sequence = Math.max(outcome.sequenceMax, store.missSequence)
    for (const result of outcome.results) {
      if ('version' in result && result.version !== undefined && result.version > sequence) {
        sequence = result.version
      }
    }
    await durability.waitFor(sequence)
    const encode = (result: (typeof outcome.results)[number]) => {
      if (!('value' in result)) return result
      const { mediaType, body } = decodeMediaType(result.contentType, result.value)
      return encodeValue(body, mediaType, result.version)
    }
    let readSize = 0
    for (const result of outcome.results) {
      if ('value' in result) readSize += result.value.byteLength
    }
    if (readSize <= streamedReadSizeMin)
      return c.json({ results: outcome.results.map(encode) }, 200)
    const stream = jsonArrayStream('results', outcome.results.length, (index) =>
      encode(outcome.results[index]!),
    )
    return c.body(stream, 200, { 'Content-Type': 'application/json' })
  })
}

/**
 * Answers up to this many bytes of values are built as one string; larger ones are streamed,
 * a result at a time as the connection takes them, so the encoded answer never sits whole in
 * memory beside the values it encodes.
 */
const streamedReadSizeMin = 256 * 1024

/**
 * Checks, before anything is applied, that the values the batch reads fit in sizeMax bytes, and
 * returns the results of its reads that come before its first write, done here (nothing before
 * them changes their answer); undefined when the reads would not fit. A read after a write is
 * sized from the batch's own writes when it reads a key the batch wrote, or from the entry as it
 * is now, without being done: done now, it would answer from the state before the writes. A set
 * that evicts another key the batch then reads makes the count larger than the answer, never
 * smaller. Reads done before a refusal have refreshed their keys' recency; nothing else changed.
 */
function readsWithin(
  tx: StoreTransaction,
  ops: Op[],
  prepared: (PreparedSet | undefined)[],
  sizeMax: number,
): (Entry | undefined)[] | undefined {
  const early: (Entry | undefined)[] = []
  let size = 0
  let index = 0
  for (; index < ops.length && ops[index]!.op === 'get'; index++) {
    const entry = tx.get(ops[index]!.key)
    early.push(entry)
    if (entry !== undefined) size += bodySizeOf(entry.contentType, entry.value)
    if (size > sizeMax) return undefined
  }
  // The size of each key's value as the batch's writes so far leave it: 0 once deleted.
  const written = new Map<string, number>()
  for (; index < ops.length; index++) {
    const op = ops[index]!
    if (op.op === 'set') written.set(op.key, prepared[index]!.bodySize)
    else if (op.op === 'delete') written.set(op.key, 0)
    else {
      const entry = written.has(op.key) ? undefined : tx.peek(op.key)
      size +=
        written.get(op.key) ??
        (entry === undefined ? 0 : bodySizeOf(entry.contentType, entry.value))
      if (size > sizeMax) return undefined
    }
  }
  return early
}

function prepareSet(
  op: Extract<Op, { op: 'set' }>,
): PreparedSet | { code: ErrorCode; detail: string } {
  const mediaType = encodeMediaType(op.contentType)
  if (typeof mediaType === 'string') {
    return {
      code: 'content_type_invalid',
      detail: `contentType: ${mediaTypeRefusal(op.contentType ?? '', mediaType)}`,
    }
  }
  let body: Uint8Array
  if (op.encoding === 'base64') {
    // Whole groups of four only: Buffer.from drops what does not fill a byte ("A" stored nothing).
    if (op.value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(op.value)) {
      return {
        code: 'invalid_request',
        detail:
          'value is not base64 (groups of four of A-Z, a-z, 0-9, + and /, the last padded with = to four), as "encoding":"base64" says',
      }
    }
    body = Buffer.from(op.value, 'base64')
  } else {
    body = Buffer.from(op.value, 'utf8')
  }
  const value = mediaType.prefix.length === 0 ? body : Buffer.concat([mediaType.prefix, body])
  const options: SetOptions = { contentType: mediaType.tag }
  if (op.ttl !== undefined) {
    // Checked here: the store refusing it inside the lock would leave the batch half-applied.
    if (!isTtlSeconds(op.ttl)) return { code: 'ttl_invalid', detail: ttlRefusal }
    options.ttlMs = op.ttl * 1000
  }
  return { value, options, bodySize: body.byteLength }
}

/** A read's result (src/http/value-text.ts), built in one literal, not spread from parts. */
function encodeValue(body: Uint8Array, contentType: string, version: number) {
  const text = valueText(body)
  return { value: text.value, encoding: text.encoding, contentType, version }
}
