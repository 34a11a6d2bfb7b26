import { Store } from '../../src/store/store.js'
import type {
  Entry,
  MutationOp,
  MutationRecord,
  ScanItem,
  StoreErrorCode,
  StoreResult,
  StoreTransaction,
} from '../../src/store/types.js'
import { verifyStore } from '../../src/store/verify.js'
import { prng } from '../support/random.js'
import {
  attachClock,
  checkValue,
  encodeValue,
  errorLog,
  fingerprint,
  keyCount,
  keyHash,
  keys,
  type SharedClock,
  scanPrefixes,
} from './workload.js'

// What one hammer thread does to the shared store: random mixed operations. It checks every
// answer it gets against what must hold whatever the other threads did meanwhile, and tallies
// what it did so the main thread can check the store's stats against the sum. Nothing here knows
// it runs in a worker; hammer-worker.ts is the entry.

export interface HammerTask {
  kind: 'hammer'
  buffer: SharedArrayBuffer
  thread: number
  seed: number
  /** Top-level operations: an atomically() batch, or a scan of up to 3 pages, counts as one. */
  operationCount: number
  /** Runs verifyStore() (under the lock, while other threads run) every this many operations. */
  verifyEvery: number
  valueSizeMax: number
  /** The shared clock all hammer threads read (see sharedClock in workload.ts). */
  clock: SharedClock
}

export interface HammerReport {
  thread: number
  operationCount: number
  /** Every store call, including each one inside an atomically() batch. */
  callCount: number
  hits: number
  misses: number
  setsOk: number
  deletesOk: number
  /** Records this thread's onMutation saw, by op; their sequence numbers' count and sum. */
  mutations: Record<MutationOp, number>
  sequenceCount: number
  sequenceSum: number
  /** The highest version this thread saw for each key index (0 for never). */
  versionsSeen: number[]
  entryCountMaxSeen: number
  bytesUsedMaxSeen: number
  verifyCount: number
  errorCount: number
  /** The first few errors, in full. */
  errors: string[]
}

/** The content type each value carries: derived from its key and size, so a reader can check it. */
export const contentTypeOf = (hash: number, valueSize: number) => (hash + valueSize) % 251

/** `stopped` is asked between operations: true ends the run early, outside the lock. */
export function runHammer(task: HammerTask, stopped: () => boolean = () => false): HammerReport {
  const { thread } = task
  const log = errorLog(thread)
  const random = prng(task.seed)
  const int = (n: number) => Math.floor(random() * n)

  const mutations: Record<MutationOp, number> = {
    set: 0,
    delete: 0,
    evict: 0,
    expire: 0,
    clear: 0,
    commit: 0,
  }
  let sequenceCount = 0
  let sequenceSum = 0
  let sequenceLast = 0
  const onMutation = (record: MutationRecord) => {
    mutations[record.op]++
    sequenceCount++
    sequenceSum += record.sequence
    // The lock orders every record; this thread's records are a subsequence of that order.
    if (record.sequence <= sequenceLast) {
      log.fail(`mutation sequence ${record.sequence} after ${sequenceLast}`)
    }
    sequenceLast = record.sequence
  }
  const time = attachClock(task.clock)
  const store = Store.attach(task.buffer, { clock: time.read, onMutation })
  const { entryCountMax, memorySizeMax } = store.layout.limits

  const hashes = keys.map(keyHash)
  const keyIndexOf = new Map(keys.map((key, i) => [key, i]))
  const versionsSeen = new Float64Array(keyCount)
  const myVersions = new Float64Array(keyCount)
  const myFingerprints = new Uint32Array(keyCount)

  let operation = 0
  let callCount = 0
  let hits = 0
  let misses = 0
  let setsOk = 0
  let deletesOk = 0
  let versionWrittenLast = 0
  let entryCountMaxSeen = 0
  let bytesUsedMaxSeen = 0
  let verifyCount = 0
  const fail = (message: string) => log.fail(`op ${operation}: ${message}`)

  // Values alternate between small and large phases, so the store swings between being full of
  // entries (entryCountMax) and full of bytes (memorySizeMax), and the arena cleaner moves
  // records both ways.
  const valueSize = () =>
    Math.floor(operation / 5000) % 2 === 0 ? int(13) : int(task.valueSizeMax + 1)

  const makeValue = (k: number) => {
    const value = encodeValue(hashes[k]!, valueSize(), random)
    return { value, contentType: contentTypeOf(hashes[k]!, value.length) }
  }

  const noteVersion = (k: number, version: number, where: string) => {
    if (version < versionsSeen[k]!) {
      fail(`${where} ${keys[k]}: version ${version} after seeing ${versionsSeen[k]}`)
    }
    if (version > versionsSeen[k]!) versionsSeen[k] = version
  }

  /** Checks an entry read at or after time `before`, for key index k. */
  const checkEntry = (k: number, entry: Entry | undefined, before: number, where: string) => {
    if (entry === undefined) return
    const problem = checkValue(hashes[k]!, entry.value)
    if (problem !== undefined) fail(`${where} ${keys[k]}: ${problem}`)
    if (entry.contentType !== contentTypeOf(hashes[k]!, entry.value.length)) {
      fail(`${where} ${keys[k]}: content type ${entry.contentType} belongs to another value`)
    }
    if (entry.expiresAt !== 0 && entry.expiresAt <= before) {
      fail(`${where} ${keys[k]}: returned an entry that expired at ${entry.expiresAt} < ${before}`)
    }
    if (entry.version === myVersions[k] && fingerprint(entry.value) !== myFingerprints[k]) {
      fail(`${where} ${keys[k]}: version ${entry.version} is this thread's write, the bytes differ`)
    }
    noteVersion(k, entry.version, where)
  }

  const noteWrite = (k: number, version: number, value: Uint8Array, where: string) => {
    if (version <= versionWrittenLast) {
      fail(
        `${where} ${keys[k]}: version ${version} not above this thread's last ${versionWrittenLast}`,
      )
    }
    versionWrittenLast = version
    noteVersion(k, version, where)
    myVersions[k] = version
    myFingerprints[k] = fingerprint(value)
    setsOk++
  }

  const noteGet = (entry: Entry | undefined) => {
    if (entry === undefined) misses++
    else hits++
  }

  /** True when an entry seen earlier has certainly not expired by `after`. */
  const liveAt = (entry: Entry, after: number) => entry.expiresAt === 0 || entry.expiresAt > after

  /** A short TTL for about a third of the writes, so entries expire while the test runs. */
  const ttl = () => (random() < 0.35 ? 1 + int(50) : undefined)

  const checkScanItem = (item: ScanItem, prefix: string, before: number) => {
    const k = keyIndexOf.get(item.key)
    if (k === undefined || !item.key.startsWith(prefix)) {
      fail(`scan '${prefix}' listed ${JSON.stringify(item.key)}`)
      return
    }
    if (item.valueSize > task.valueSizeMax) fail(`scan: ${item.key} has size ${item.valueSize}`)
    if (item.contentType !== contentTypeOf(hashes[k]!, item.valueSize)) {
      fail(`scan: ${item.key} has the content type of another value`)
    }
    if (item.expiresAt !== 0 && item.expiresAt <= before) fail(`scan listed expired ${item.key}`)
    noteVersion(k, item.version, 'scan')
  }

  /**
   * One atomically() batch: within it no other thread runs, so answers are exact. `start` is the
   * time before the batch: the store may give every operation in it the one instant it first
   * reads, or read the clock afresh for each, so `start` is the one lower bound on that instant.
   */
  const batch = (tx: StoreTransaction, start: number) => {
    const length = 2 + int(5)
    for (let i = 0; i < length; i++) {
      const k = int(keyCount)
      const key = keys[k]!
      const choice = int(6)
      callCount++
      if (choice === 0) {
        const entry = tx.get(key)
        noteGet(entry)
        checkEntry(k, entry, start, 'tx.get')
        continue
      }
      const prior = tx.peek(key)
      checkEntry(k, prior, start, 'tx.peek')
      if (choice === 1) continue
      const { value, contentType } = makeValue(k)
      callCount++
      if (choice === 2 || choice === 3) {
        // A plain set, or a create: a create fails exactly when the key is live.
        const ifAbsent = choice === 3
        const ttlMs = ttl()
        const result = tx.set(key, value, { contentType, ifAbsent, ttlMs })
        if (!result.ok) {
          if (!(ifAbsent && result.code === 'key_exists' && prior !== undefined)) {
            fail(`tx.set ${key} (ifAbsent ${ifAbsent}, prior ${!!prior}): ${result.code}`)
          }
          continue
        }
        if (ifAbsent && prior !== undefined && liveAt(prior, time.now())) {
          fail(`tx.set ifAbsent ${key} succeeded over a live entry`)
        }
        noteWrite(k, result.version, value, 'tx.set')
        callCount++
        const back = tx.peek(key)
        const afterPeek = time.now()
        if (back !== undefined) {
          if (back.version !== result.version) fail(`tx.peek ${key}: not the version just set`)
          checkEntry(k, back, start, 'tx.peek after set')
        } else if (ttlMs === undefined || start + ttlMs > afterPeek) {
          fail(`tx.peek ${key} right after its set: absent, yet it cannot have expired`)
        }
      } else if (choice === 4) {
        // Compare-and-set against the version just read: nothing can intervene but expiry.
        const result = tx.set(key, value, { contentType, ifVersion: prior?.version ?? 1 })
        const after = time.now()
        if (result.ok) {
          if (prior === undefined) fail(`tx.set ifVersion ${key} succeeded on an absent key`)
          else if (result.version <= prior.version) fail(`tx.set ifVersion ${key}: stale version`)
          noteWrite(k, result.version, value, 'tx.set ifVersion')
        } else if (result.code !== 'version_mismatch') {
          fail(`tx.set ifVersion ${key}: ${result.code}`)
        } else if (prior !== undefined && liveAt(prior, after)) {
          fail(`tx.set ifVersion ${key} refused the version just read`)
        }
      } else {
        const result = tx.delete(key)
        const after = time.now()
        if (result.ok) {
          deletesOk++
          if (prior === undefined) fail(`tx.delete ${key} deleted an absent key`)
        } else if (result.code !== 'not_found') {
          fail(`tx.delete ${key}: ${result.code}`)
        } else if (prior !== undefined && liveAt(prior, after)) {
          fail(`tx.delete ${key} did not find the live entry just read`)
        }
        callCount++
        if (tx.peek(key) !== undefined) fail(`tx.peek ${key} found it right after its delete`)
      }
    }
  }

  /** Calls that must be refused whatever the state, and a get that must miss. */
  const invalid = () => {
    const value = new Uint8Array(1)
    const someKey = keys[int(keyCount)]!
    const cases: [string, () => StoreResult<object>, StoreErrorCode][] = [
      ['empty key', () => store.set('', value), 'key_empty'],
      ['long key', () => store.set('k'.repeat(65), value), 'key_too_large'],
      ['long UTF-8 key', () => store.set('я'.repeat(40), value), 'key_too_large'],
      ['lone surrogate', () => store.set('\ud800x', value), 'key_invalid'],
      [
        'large value',
        () => store.set(someKey, new Uint8Array(task.valueSizeMax + 1)),
        'value_too_large',
      ],
      ['negative TTL', () => store.set(someKey, value, { ttlMs: -1 }), 'ttl_invalid'],
      [
        'fractional version',
        () => store.set(someKey, value, { ifVersion: 0.5 }),
        'version_mismatch',
      ],
      [
        'future version',
        () => store.set(someKey, value, { ifVersion: 2 ** 52 }),
        'version_mismatch',
      ],
    ]
    const [name, call, code] = cases[int(cases.length)]!
    callCount++
    const result = call()
    if (result.ok || result.code !== code) fail(`${name}: ${JSON.stringify(result)}, not ${code}`)
    callCount++
    const entry = store.get('')
    noteGet(entry)
    if (entry !== undefined) fail('get of the empty key hit')
  }

  /** One top-level operation, chosen by a roll out of 1000. */
  const step = () => {
    const k = int(keyCount)
    const key = keys[k]!
    const roll = int(1000)
    const before = time.now()
    if (roll < 300) {
      callCount++
      const entry = store.get(key)
      noteGet(entry)
      checkEntry(k, entry, before, 'get')
    } else if (roll < 380) {
      callCount++
      checkEntry(k, store.peek(key), before, 'peek')
    } else if (roll < 630) {
      const { value, contentType } = makeValue(k)
      callCount++
      const result = store.set(key, value, { contentType, ttlMs: ttl() })
      if (result.ok) noteWrite(k, result.version, value, 'set')
      else fail(`set ${key}: ${result.code}`)
    } else if (roll < 680) {
      const { value, contentType } = makeValue(k)
      callCount++
      const result = store.set(key, value, { contentType, ifAbsent: true, ttlMs: ttl() })
      if (result.ok) noteWrite(k, result.version, value, 'set ifAbsent')
      else if (result.code !== 'key_exists') fail(`set ifAbsent ${key}: ${result.code}`)
    } else if (roll < 740) {
      // Optimistic compare-and-set across two calls: another thread may win in between.
      callCount++
      const prior = store.peek(key)
      checkEntry(k, prior, before, 'peek')
      if (prior === undefined) return
      const { value, contentType } = makeValue(k)
      callCount++
      const result = store.set(key, value, { contentType, ifVersion: prior.version })
      if (result.ok) noteWrite(k, result.version, value, 'set ifVersion')
      else if (result.code !== 'version_mismatch') fail(`set ifVersion ${key}: ${result.code}`)
    } else if (roll < 840) {
      const ifVersion = random() < 0.3 ? versionsSeen[k] || 1 : undefined
      callCount++
      const result = store.delete(key, ifVersion === undefined ? undefined : { ifVersion })
      if (result.ok) deletesOk++
      else if (result.code !== 'not_found' && !(ifVersion && result.code === 'version_mismatch')) {
        fail(`delete ${key}: ${result.code}`)
      }
    } else if (roll < 850) {
      // A few pages of a scan; each page is its own call, and so its own top-level operation.
      const prefix = scanPrefixes[int(scanPrefixes.length)]!
      let cursor: number | null = int(2) === 0 ? 0 : int(entryCountMax)
      for (let page = 0; page < 3 && cursor !== null; page++) {
        callCount++
        const scanned = store.scan(prefix, cursor, 1 + int(50))
        const seen = new Set<string>()
        for (const item of scanned.items) {
          if (seen.has(item.key)) fail(`scan page listed ${item.key} twice`)
          seen.add(item.key)
          checkScanItem(item, prefix, before)
        }
        if (scanned.cursor !== null && scanned.cursor <= cursor) fail('scan cursor went back')
        cursor = scanned.cursor
      }
    } else if (roll < 860) {
      const countMax = 1 + int(20)
      callCount++
      const count = store.sweep(countMax)
      if (!(count >= 0 && count <= countMax)) fail(`sweep(${countMax}) returned ${count}`)
    } else if (roll < 995) {
      const start = time.now()
      store.atomically((tx) => batch(tx, start))
    } else if (roll < 999 || int(50) !== 0) {
      invalid()
    } else {
      // About twenty times a run: resets every structure while the other threads keep going.
      callCount++
      store.clear()
    }
  }

  for (operation = 0; operation < task.operationCount && !stopped(); operation++) {
    step()
    if (operation % 1000 === 0) {
      callCount++
      const stats = store.stats()
      entryCountMaxSeen = Math.max(entryCountMaxSeen, stats.entryCount)
      bytesUsedMaxSeen = Math.max(bytesUsedMaxSeen, stats.bytesUsed)
      if (stats.entryCount > entryCountMax) fail(`entry count ${stats.entryCount}`)
      if (stats.bytesUsed > memorySizeMax) fail(`bytes used ${stats.bytesUsed}`)
    }
    if (operation % task.verifyEvery === task.verifyEvery - 1) {
      // verifyStore takes the lock, so this checks every invariant at a moment when another
      // thread may have been just about to run.
      verifyCount++
      const problems = verifyStore(task.buffer)
      if (problems.length > 0) {
        // Corrupt structures soon make some thread throw or loop with the lock held, which says
        // far less than this does: end the run here, with what verifyStore found.
        throw new Error(
          `verifyStore at op ${operation} of thread ${thread}: ${problems.join('; ')}`,
        )
      }
    }
  }

  return {
    thread,
    operationCount: operation,
    callCount,
    hits,
    misses,
    setsOk,
    deletesOk,
    mutations,
    sequenceCount,
    sequenceSum,
    versionsSeen: Array.from(versionsSeen),
    entryCountMaxSeen,
    bytesUsedMaxSeen,
    verifyCount,
    errorCount: log.count,
    errors: log.errors,
  }
}
