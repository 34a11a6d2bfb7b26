import os from 'node:os'
import { corsOriginRefusal } from './http/cors.js'
import { inlinePrefixSizeMax } from './http/media-type.js'
import {
  type StoreLimits,
  storeLimitsDefault,
  walRecordSizeMax,
  walRemovalRecordSizeMax,
  walRingSizeMin,
} from './store/layout.js'
import type { FsyncMode } from './wal/writer.js'

// Every limit and default in one place. Each option is a flag and an SLABKV_* environment
// variable; one table drives parsing, validation and `slabkv serve --help`, so they cannot
// drift apart. The store is allocated once at start from these numbers, so each store limit is
// also a memory cost: see src/store/layout.ts for the bytes each implies.

export interface ServerConfig {
  host: string
  port: number
  /** This node's name in GET /v1/cluster; resolveConfig fills in hostname:port when unset. */
  nodeId: string
  threadCount: number
  token: string | undefined
  /** Host names served besides loopback ones, lowercased; see src/http/host.ts. */
  allowedHosts: string[]
  /** Origins whose pages may call the API from a browser, exactly as sent; see src/http/cors.ts. */
  corsOrigins: string[]
  dataDir: string
  limits: StoreLimits
  bodySizeMax: number
  batchOpCountMax: number
  /** The most bytes of values one batch may read, so that its answer stays bounded. */
  batchReadSizeMax: number
  /** The deepest nesting of arrays and objects a JSON value stored through /set may have. */
  jsonDepthMax: number
  headersTimeoutMs: number
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
  connectionCheckIntervalMs: number
  sendTimeoutMs: number
  /** The most requests of one connection that may wait for their answers at once. */
  pipelinedRequestCountMax: number
  shutdownTimeoutMs: number
  /** How often the main thread reclaims expired entries nobody touched. */
  sweepIntervalMs: number
  fsync: FsyncMode
  segmentSizeMax: number
  snapshotLogSizeMin: number
  noSpaceRetryMs: number
  /** Log bytes a snapshot made redundant, kept so that watchers can resume from before it. */
  watchHistorySize: number
  /** Watch streams open at once, across every handler thread. */
  watcherCountMax: number
  /** Per handler thread: bytes of recent changes kept in memory for its watchers. */
  watchBufferSize: number
  /** How often an idle watch stream gets a heartbeat. */
  watchHeartbeatMs: number
  /** Whether the main thread estimates the miss-ratio curve (src/mrc/), from sampled accesses. */
  missRatioCurve: boolean
}

type Kind = 'string' | 'integer' | 'size'

interface OptionSpec {
  flag: string
  kind: Kind
  default: string
  description: string
  min?: number
  max?: number
  /** For a string option: the only values accepted. */
  choices?: readonly string[]
  /** Where the value goes: a field of the configuration, or one of the store's limits. */
  target: keyof ServerConfig | { limit: keyof StoreLimits }
  /** For the few options not stored as parsed: an empty value that means unset, a list. */
  convert?: (value: string | number, config: ServerConfig) => unknown
}

/** Stores an option's parsed value where its spec says. */
function applyOption(spec: OptionSpec, config: ServerConfig, value: string | number): void {
  const converted = spec.convert === undefined ? value : spec.convert(value, config)
  const into = (typeof spec.target === 'object' ? config.limits : config) as unknown as Record<
    string,
    unknown
  >
  into[typeof spec.target === 'object' ? spec.target.limit : spec.target] = converted
}

/**
 * A token off loopback must resist guessing; 16 characters is 96 bits or more even when drawn
 * from base64's alphabet. On loopback only this machine's users can try, so any length goes.
 */
const tokenSizeMinOffLoopback = 16

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
/**
 * The largest --max-value-size. The JSON routes (GET /get/{key}, a batch get) answer a value as
 * one JSON string, and V8 makes no string longer than 2^29 - 24 characters (512 MiB); a byte
 * can take six characters in JSON (\u0001), so a value must stay under 85 MiB for its answer
 * to fit. Cutting values into slices would need /get's check that stored JSON parses to stream
 * too; no store of values this size is served from an HTTP cache's memory anyway.
 */
const valueSizeMaxLimit = 64 * MiB
/** The ring's offsets are i32 words. */
const walRingSizeMax = 2 * GiB - 1

export const optionSpecs: OptionSpec[] = [
  {
    flag: 'host',
    kind: 'string',
    default: '127.0.0.1',
    description: 'Address to bind. A non-loopback address needs --token.',
    target: 'host',
  },
  {
    flag: 'port',
    kind: 'integer',
    default: '8000',
    min: 0,
    max: 65535,
    description: 'Port to bind; 0 picks a free one, which the start log names.',
    target: 'port',
  },
  {
    // After 'port': the default name is built from it.
    flag: 'node-id',
    kind: 'string',
    default: '',
    description:
      "This node's name in GET /v1/cluster, so an operator running several nodes can tell them apart; empty: <hostname>:<port>.",
    target: 'nodeId',
    convert: (v, c) => (v === '' ? `${os.hostname()}:${c.port}` : v),
  },
  {
    flag: 'threads',
    kind: 'integer',
    default: String(Math.min(os.availableParallelism(), 8)),
    min: 1,
    max: 64,
    description: 'Handler threads: each serves HTTP on the shared port (the cores, at most 8).',
    target: 'threadCount',
  },
  {
    flag: 'token',
    kind: 'string',
    default: '',
    description:
      'Bearer token required on every route but /healthz, /readyz, the UI and the API docs: ' +
      `visible ASCII characters, at least ${tokenSizeMinOffLoopback} of them to bind a non-loopback address.`,
    target: 'token',
    convert: (v) => (v === '' ? undefined : v),
  },
  {
    flag: 'allowed-hosts',
    kind: 'string',
    default: '',
    description:
      'Host names served besides loopback ones (localhost, 127.x.x.x, [::1]), comma-separated. ' +
      'Without --token nothing else is served (DNS rebinding); with --token, any Host unless this is set.',
    target: 'allowedHosts',
    convert: (v) =>
      String(v)
        .split(',')
        .map((name) => name.trim().toLowerCase())
        .filter((name) => name !== ''),
  },
  {
    flag: 'cors-origins',
    kind: 'string',
    default: '',
    description:
      'Origins whose web pages may call the API from a browser (CORS), comma-separated, each as browsers send it: ' +
      "http://host[:port] or https://…, or null for a page opened from disk. '*' is refused. None: browsers refuse every other origin.",
    target: 'corsOrigins',
    convert: (v) =>
      String(v)
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== ''),
  },
  {
    flag: 'data-dir',
    kind: 'string',
    default: './data',
    description: 'Where the write-ahead log and snapshots live; replayed at start.',
    target: 'dataDir',
  },
  {
    flag: 'fsync',
    kind: 'string',
    default: 'always',
    choices: ['always', 'everysec', 'no'],
    description:
      'always: acknowledge after the fdatasync covering the write (a crash loses nothing acknowledged); ' +
      'everysec: after write(2), fdatasync every second (a power loss can lose ~1 s); ' +
      'no: after write(2), the OS flushes (a power loss can lose ~30 s).',
    target: 'fsync',
  },
  {
    flag: 'snapshot-after-size',
    kind: 'size',
    default: '64MiB',
    min: 1,
    max: 1024 * GiB,
    description:
      'Log bytes after which a snapshot is written and the log it covers deleted. Lower: faster restarts, more snapshot writing.',
    target: 'snapshotLogSizeMin',
  },
  {
    flag: 'segment-size',
    kind: 'size',
    default: '64MiB',
    min: 4 * KiB,
    max: 1024 * GiB,
    description: 'Log segment file size at which a new segment starts.',
    target: 'segmentSizeMax',
  },
  {
    flag: 'watch-history-size',
    kind: 'size',
    default: '0',
    min: 0,
    max: 1024 * GiB,
    description:
      'Log bytes kept after a snapshot has made them redundant, so that GET /v1/watch can resume from further back than the last snapshot (newest kept first). 0: watchers can resume from the last snapshot on.',
    target: 'watchHistorySize',
  },
  {
    flag: 'max-watchers',
    kind: 'integer',
    default: '1000',
    min: 0,
    max: 1_000_000,
    description:
      'GET /v1/watch streams open at once across the server; one more is answered 429. 0 turns the feed off.',
    target: 'watcherCountMax',
  },
  {
    flag: 'watch-buffer-size',
    kind: 'size',
    default: '4MiB',
    min: 64 * KiB,
    max: 1 * GiB,
    description:
      'Per handler thread: bytes of recent changes kept in memory for its watchers; a watcher further behind reads the log from disk.',
    target: 'watchBufferSize',
  },
  {
    flag: 'miss-ratio-curve',
    kind: 'string',
    // On: its cost is bounded by the collector's budget of sampled accesses (bench:curve and
    // bench:http --curve-ab in bench/RESULTS.md), and off leaves one comparison per operation.
    default: 'on',
    choices: ['on', 'off'],
    description:
      'on: estimate from sampled reads the hit ratio the store would have with more or less memory (missRatioCurve in GET /v1/stats); off: sample nothing.',
    target: 'missRatioCurve',
    convert: (value) => value === 'on',
  },
  {
    flag: 'watch-heartbeat-ms',
    kind: 'integer',
    default: '15000',
    min: 10,
    max: 3_600_000,
    description:
      'How often an idle watch stream gets a heartbeat (it keeps proxies from closing it, and carries how far the log was read).',
    target: 'watchHeartbeatMs',
  },
  {
    flag: 'wal-ring-size',
    kind: 'size',
    default: '0',
    min: 0,
    max: walRingSizeMax,
    description:
      'Bytes of the shared ring carrying log records to the writer thread; 0: the larger of 4MiB and what the largest batch body needs (--max-body-size plus one of the largest records). When full, writes wait for the disk; a batch whose records exceed it is refused.',
    target: { limit: 'walRingSize' },
    convert: (v) => (v === 0 ? undefined : v),
  },
  {
    flag: 'max-entries',
    kind: 'integer',
    default: String(storeLimitsDefault.entryCountMax),
    min: 1,
    max: 2 ** 28,
    description: 'Entries resident at once; about 64 bytes each, allocated at start.',
    target: { limit: 'entryCountMax' },
  },
  {
    flag: 'max-memory',
    kind: 'size',
    default: formatSize(storeLimitsDefault.memorySizeMax),
    min: 1,
    max: 3 * GiB,
    description: 'Bytes of keys plus values resident at once, allocated at start.',
    target: { limit: 'memorySizeMax' },
  },
  {
    flag: 'max-key-size',
    kind: 'size',
    default: String(storeLimitsDefault.keySizeMax),
    min: 1,
    max: 65535,
    description: 'Largest key, in UTF-8 bytes.',
    target: { limit: 'keySizeMax' },
  },
  {
    flag: 'max-value-size',
    kind: 'size',
    default: formatSize(storeLimitsDefault.valueSizeMax),
    min: 0,
    max: valueSizeMaxLimit,
    description: `Largest value, in bytes; at most ${valueSizeMaxLimit / MiB}MiB, so that every value can be read through every route, as JSON too.`,
    target: { limit: 'valueSizeMax' },
  },
  {
    flag: 'max-body-size',
    kind: 'size',
    default: '4MiB',
    min: 1,
    max: 2 * GiB,
    description: 'Largest request body, in bytes.',
    target: 'bodySizeMax',
  },
  {
    flag: 'max-batch-ops',
    kind: 'integer',
    default: '1000',
    min: 1,
    max: 1_000_000,
    description: 'Most ops in one /v1/batch request (all run under one lock hold).',
    target: 'batchOpCountMax',
  },
  {
    flag: 'max-batch-read-size',
    kind: 'size',
    default: '16MiB',
    min: 1,
    max: 1 * GiB,
    description:
      'Most bytes of values one /v1/batch may read; its answer is held in memory until sent. A batch reading more is refused (413).',
    target: 'batchReadSizeMax',
  },
  {
    flag: 'max-json-depth',
    kind: 'integer',
    default: '128',
    min: 1,
    // Serializing a value nested much deeper runs out of stack: about 5,000 levels on the main
    // thread, where it would fail every later read of the value.
    max: 1000,
    description: 'Deepest nesting of arrays and objects in a JSON value stored with POST /set.',
    target: 'jsonDepthMax',
  },
  {
    flag: 'headers-timeout-ms',
    kind: 'integer',
    default: '10000',
    min: 1,
    max: 3_600_000,
    description: 'Time a client has to send the request headers.',
    target: 'headersTimeoutMs',
  },
  {
    flag: 'request-timeout-ms',
    kind: 'integer',
    default: '30000',
    min: 1,
    max: 3_600_000,
    description: 'Time a client has to send the whole request.',
    target: 'requestTimeoutMs',
  },
  {
    flag: 'keep-alive-timeout-ms',
    kind: 'integer',
    default: '5000',
    min: 1,
    max: 3_600_000,
    description: 'Idle time before a kept-alive connection is closed.',
    target: 'keepAliveTimeoutMs',
  },
  {
    flag: 'connection-check-interval-ms',
    kind: 'integer',
    default: '1000',
    min: 10,
    max: 60_000,
    description: "How often the timeouts are checked (Node's own default, 30 s, delays them all).",
    target: 'connectionCheckIntervalMs',
  },
  {
    flag: 'send-timeout-ms',
    kind: 'integer',
    default: '30000',
    min: 1,
    max: 3_600_000,
    description:
      'Time a client may take no bytes of its answer before its connection is closed (what the server holds for it is freed).',
    target: 'sendTimeoutMs',
  },
  {
    flag: 'max-pipelined-requests',
    kind: 'integer',
    default: '512',
    min: 1,
    max: 100_000,
    description:
      'Most requests one connection may send ahead of the answers it has taken; the next is answered 429 and the connection closed after it.',
    target: 'pipelinedRequestCountMax',
  },
  {
    flag: 'shutdown-timeout-ms',
    kind: 'integer',
    default: '10000',
    min: 0,
    max: 3_600_000,
    description: 'How long SIGTERM waits for in-flight requests before closing them.',
    target: 'shutdownTimeoutMs',
  },
]

export function envName(flag: string): string {
  return `SLABKV_${flag.toUpperCase().replaceAll('-', '_')}`
}

/** A size as --help shows it: in the largest binary unit that divides it. */
function formatSize(size: number): string {
  for (const [unit, bytes] of [
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB],
  ] as const) {
    if (size % bytes === 0) return `${size / bytes}${unit}`
  }
  return String(size)
}

/** Parses "4MiB", "512KiB", "1GiB" or a plain byte count. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)(KiB|MiB|GiB)?$/.exec(text.trim())
  if (match === null) return undefined
  const unit = match[2] === 'KiB' ? KiB : match[2] === 'MiB' ? MiB : match[2] === 'GiB' ? GiB : 1
  return Number(match[1]) * unit
}

export type ConfigResult = { ok: true; config: ServerConfig } | { ok: false; message: string }

/**
 * Builds the configuration from flag values (already split by util.parseArgs) and the
 * environment; a flag wins over its variable, and either over the default.
 */
export function resolveConfig(
  flags: Record<string, string | undefined>,
  env: NodeJS.ProcessEnv,
): ConfigResult {
  const config: ServerConfig = {
    host: '',
    port: 0,
    nodeId: '',
    threadCount: 1,
    token: undefined,
    allowedHosts: [],
    corsOrigins: [],
    dataDir: '',
    limits: { ...storeLimitsDefault },
    bodySizeMax: 0,
    batchOpCountMax: 0,
    batchReadSizeMax: 0,
    jsonDepthMax: 0,
    headersTimeoutMs: 0,
    requestTimeoutMs: 0,
    keepAliveTimeoutMs: 0,
    connectionCheckIntervalMs: 0,
    sendTimeoutMs: 0,
    pipelinedRequestCountMax: 0,
    shutdownTimeoutMs: 0,
    sweepIntervalMs: 1000,
    fsync: 'always',
    segmentSizeMax: 0,
    snapshotLogSizeMin: 0,
    noSpaceRetryMs: 1000,
    watchHistorySize: 0,
    watcherCountMax: 0,
    watchBufferSize: 0,
    watchHeartbeatMs: 0,
    missRatioCurve: true,
  }
  for (const spec of optionSpecs) {
    const text = flags[spec.flag] ?? env[envName(spec.flag)] ?? spec.default
    const source = flags[spec.flag] !== undefined ? `--${spec.flag}` : envName(spec.flag)
    if (spec.kind === 'string') {
      if (spec.choices && !spec.choices.includes(text)) {
        return {
          ok: false,
          message: `${source} must be one of ${spec.choices.join(', ')}, not '${text}'`,
        }
      }
      applyOption(spec, config, text)
      continue
    }
    const value =
      spec.kind === 'size' ? parseSize(text) : /^\d+$/.test(text) ? Number(text) : undefined
    const range = `${spec.min} to ${spec.max}`
    if (value === undefined || !Number.isSafeInteger(value)) {
      const expected = spec.kind === 'size' ? 'a size such as 1048576 or 1MiB' : 'a whole number'
      return { ok: false, message: `${source} must be ${expected}, not '${text}'` }
    }
    if (value < (spec.min ?? 0) || value > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
      return { ok: false, message: `${source} must be between ${range}, not ${text}` }
    }
    applyOption(spec, config, value)
  }
  // Node refuses a header timeout longer than the request timeout; say so as configuration.
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    return { ok: false, message: '--headers-timeout-ms must not exceed --request-timeout-ms' }
  }
  const storeLimits = storeLimitsOf(config)
  if (config.limits.walRingSize !== undefined) {
    const needed = walRingSizeMin(storeLimits)
    if (config.limits.walRingSize < needed) {
      return {
        ok: false,
        message: `--wal-ring-size must be at least ${needed} (two of the largest records and an eviction's)`,
      }
    }
  } else {
    // A batch's records take no more bytes than its JSON body (a key or value is never
    // shorter in JSON than in UTF-8), so a body within --max-body-size always fits, beside the
    // largest record a wrap may skip and one eviction's record (src/wal/ring.ts).
    config.limits.walRingSize = Math.min(
      walRingSizeMax,
      Math.max(
        4 * MiB,
        walRingSizeMin(storeLimits),
        config.bodySizeMax + walRecordSizeMax(storeLimits) + walRemovalRecordSizeMax(storeLimits),
      ),
    )
  }
  const tokenRefusal = checkToken(config)
  if (tokenRefusal !== undefined) return { ok: false, message: tokenRefusal }
  for (const name of config.allowedHosts) {
    if (!hostNamePattern.test(name)) {
      return {
        ok: false,
        message: `--allowed-hosts must list host names (such as kv.example.com or [2001:db8::1]), not '${name}'`,
      }
    }
  }
  for (const origin of config.corsOrigins) {
    const refusal = corsOriginRefusal(origin)
    if (refusal !== undefined) return { ok: false, message: refusal }
  }
  return { ok: true, config }
}

/**
 * The limits the store is allocated with. The routes hold bodies to --max-value-size; an
 * uncommon media type stored inline with the value (http/media-type.ts) may add up to
 * inlinePrefixSizeMax bytes to what the store keeps.
 */
export function storeLimitsOf(config: Pick<ServerConfig, 'limits'>): StoreLimits {
  return { ...config.limits, valueSizeMax: config.limits.valueSizeMax + inlinePrefixSizeMax }
}

/** A DNS name, an IPv4 address, or an IPv6 address in brackets, as a Host header carries it. */
const hostNamePattern =
  /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$/

/** Why the token cannot be used, or undefined when it can. */
function checkToken(config: ServerConfig): string | undefined {
  const { token, host } = config
  if (token === undefined) {
    return isLoopback(host)
      ? undefined
      : `refusing to bind ${host} without a token: set --token (or ${envName('token')}) or bind 127.0.0.1`
  }
  // Clients send header values as bytes, and Node reads them back as Latin-1: a character above
  // U+007F would arrive as different characters from most clients, so such a token could never
  // match. Spaces and tabs at either end are trimmed by every parser, and inside a token they
  // end it.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    return '--token must be visible ASCII characters (! to ~, no spaces): other characters cannot be sent in an Authorization header the same way by every client'
  }
  if (!isLoopback(host) && token.length < tokenSizeMinOffLoopback) {
    return `--token must be at least ${tokenSizeMinOffLoopback} characters to bind ${host} (it has ${token.length})`
  }
  return undefined
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

export function helpText(): string {
  const rows = optionSpecs.map((spec) => {
    const name = `--${spec.flag}`.padEnd(32)
    const shown = spec.default === '' ? 'none' : spec.default
    return `  ${name}${spec.description} (default: ${shown}; env ${envName(spec.flag)})`
  })
  return `Usage: slabkv serve [options]\n\nOptions:\n${rows.join('\n')}\n`
}
