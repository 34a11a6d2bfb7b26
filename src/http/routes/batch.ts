import assert from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { createRoute, z } from '@hono/zod-openapi'
import { codeOfStoreError } from '../../errors.js'
import type { StoreTransaction } from '../../store/store.js'
import type { BatchChange, SetOptions } from '../../store/types.js'
import { type App, type AppDeps, problemResponse, whenLogged } from '../app.js'
import { decodeMediaType, encodeMediaType } from '../media-type.js'

// POST /v1/batch: many ops in one request, under one lock hold. Every condition is checked
// against the state before the batch, and only if all hold is anything applied: all or
// nothing, as etcd's transactions compare first and then act. Everything that can be checked
// without the lock (key sizes, encodings, TTLs) is checked before taking it.

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
      content: {
        'application/json': {
          schema: z.object({ results: z.array(z.record(z.string(), z.unknown())) }),
        },
      },
    },
    400: { description: 'An invalid op; nothing applied' },
    412: { description: 'A condition failed; nothing applied' },
    413: { description: 'Too many ops, or a value too large' },
  },
})

interface PreparedSet {
  value: Uint8Array
  /** The value as the client sent it, without an inline media type: what the limit applies to. */
  bodySize: number
  options: SetOptions
}

export function registerBatchRoute(app: App, { store, config, durability }: AppDeps): void {
  app.openapi(batchRoute, async (c) => {
    const { ops } = c.req.valid('json')
    const refusal = durability.refusal()
    if (refusal !== undefined && ops.some((op) => op.op !== 'get')) {
      return problemResponse(c, refusal) as never
    }
    if (ops.length > config.batchOpCountMax) {
      return problemResponse(c, 'batch_too_large', `At most ${config.batchOpCountMax} ops`) as never
    }
    const prepared: (PreparedSet | undefined)[] = []
    for (const [index, op] of ops.entries()) {
      const keyError = store.checkKey(op.key)
      if (keyError !== undefined)
        return problemResponse(c, codeOfStoreError(keyError), undefined, { index }) as never
      if (op.op !== 'set') {
        prepared.push(undefined)
        continue
      }
      const set = prepareSet(op)
      if (typeof set === 'string') return problemResponse(c, set, undefined, { index }) as never
      const entrySize = Buffer.byteLength(op.key, 'utf8') + set.value.byteLength
      if (set.bodySize > config.limits.valueSizeMax || entrySize > config.limits.memorySizeMax) {
        return problemResponse(c, 'value_too_large', undefined, { index }) as never
      }
      prepared.push(set)
    }

    const changes: BatchChange[] = ops.map((op, index) =>
      op.op === 'set'
        ? { op: 'set', key: op.key, valueSize: prepared[index]!.value.byteLength }
        : { op: op.op, key: op.key },
    )
    const writes = changes.some((change) => change.op !== 'get')
    const run = () =>
      store.atomically((tx) => {
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
        // Room in the store and in the log for every change, before the first one applies.
        if (writes) {
          const ready = tx.prepare(changes)
          if (!ready.ok) return ready.code === 'log_full' ? ready.code : { tooLarge: true }
        }
        return applyAll(tx)
      })
    const applyAll = (tx: StoreTransaction) => {
      let sequenceMax = 0
      const results = ops.map((op, index) => {
        // Reads keep the entry as is: encoding it for JSON waits until the lock is released.
        if (op.op === 'get') return tx.get(op.key) ?? { found: false }
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
    const outcome = writes ? await whenLogged(durability, run) : run()
    assert(outcome !== 'log_full', 'a batch of reads found the log full')
    if (typeof outcome === 'string') return problemResponse(c, outcome) as never
    if ('tooLarge' in outcome) {
      return problemResponse(
        c,
        'batch_too_large',
        "The batch's own entries need more than the store holds at once (--max-memory, " +
          '--max-entries), or its log records more than the log ring holds (--wal-ring-size)',
      ) as never
    }
    if ('failedIndex' in outcome) {
      // The failed condition reveals state, which may be a write not yet durable.
      await durability.waitFor(store.sequence)
      return problemResponse(
        c,
        'precondition_failed',
        `The condition of op ${outcome.failedIndex} failed; nothing was applied`,
        {
          index: outcome.failedIndex,
        },
      ) as never
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
    const results = outcome.results.map((result) => {
      if (!('value' in result)) return result
      const { mediaType, body } = decodeMediaType(result.contentType, result.value)
      return encodeValue(body, mediaType, result.version)
    })
    return c.json({ results }, 200)
  })
}

function prepareSet(
  op: Extract<Op, { op: 'set' }>,
): PreparedSet | 'invalid_request' | 'ttl_invalid' {
  const mediaType = encodeMediaType(op.contentType)
  if (mediaType === undefined) return 'invalid_request'
  let body: Uint8Array
  if (op.encoding === 'base64') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(op.value)) return 'invalid_request'
    body = Buffer.from(op.value, 'base64')
  } else {
    body = Buffer.from(op.value, 'utf8')
  }
  const value = mediaType.prefix.length === 0 ? body : Buffer.concat([mediaType.prefix, body])
  const options: SetOptions = { contentType: mediaType.tag }
  if (op.ttl !== undefined) {
    // Checked in milliseconds: 1e306 seconds is finite, its milliseconds are not, and the store
    // refusing it inside the lock would leave the batch half-applied.
    const ttlMs = op.ttl * 1000
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) return 'ttl_invalid'
    options.ttlMs = ttlMs
  }
  return { value, options, bodySize: body.byteLength }
}

/**
 * A read's result, its value as JSON can carry it: as text when its bytes are UTF-8, else
 * base64. isUtf8 and Buffer#toString use simdutf; a fatal TextDecoder goes through ICU and was
 * most of a batch's server time. The object is built in one literal, not spread from parts.
 */
function encodeValue(body: Uint8Array, contentType: string, version: number) {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const utf8 = isUtf8(bytes)
  return {
    value: bytes.toString(utf8 ? 'utf8' : 'base64'),
    encoding: utf8 ? ('utf8' as const) : ('base64' as const),
    contentType,
    version,
  }
}
