#!/usr/bin/env node
import { readFileSync, statSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http'
import { parseArgs } from 'node:util'
import { envName, helpText, optionSpecs, resolveConfig, storeLimitsOf } from './config.js'
import { exitFailed, exitOk, exitServer, exitUsage } from './exit-codes.js'
import { parseTtlSeconds, ttlRefusal } from './http/ttl.js'
import { createLog } from './log.js'
import { packageVersion } from './package.js'

// The slabkv command: `serve` runs the server; get, set, del and ls are a terminal client for
// a running one; `wal check|repair` inspect a data directory. Exit codes: src/exit-codes.ts.

/** get and del of a missing key, or a failed condition. */
const exitNotFound = exitFailed

const usage = `Usage: slabkv <command> [options]

Commands:
  serve                     Run the server (slabkv serve --help lists its options)
  get KEY                   Write the value's bytes to stdout
  set KEY VALUE|- [--ttl S] Store VALUE (- reads it from stdin), optionally for S seconds
  del KEY                   Delete the key
  ls [PREFIX]               List keys, one per line
  wal check DIR [options]   Report a data directory's log state; changes nothing
  wal repair DIR [options]  Cut a corrupt log at the damage (cut bytes kept in .broken files)
                            Both replay the log as a start would: give them the limits the
                            server runs with (serve's options, or SLABKV_* variables)

Client options:
  --url URL      Server address (default http://127.0.0.1:8000, env SLABKV_URL)
  --token TOKEN  Bearer token (env SLABKV_TOKEN)
  --json         Keys (and ls's PREFIX) as JSON strings, as ls --json prints them
  --             End of options: a KEY or VALUE after it may start with '-'

  -h, --help     Show this help (slabkv COMMAND --help: that command's)
  -v, --version  Show the version
`

/** The options every client command takes, after those of its own. */
const clientOptionsHelp = (own = '') => `Options:
${own}  --url URL      Server address (default http://127.0.0.1:8000, env SLABKV_URL)
  --token TOKEN  Bearer token (env SLABKV_TOKEN)
  --json         KEY is a JSON string, as slabkv ls --json prints it ("a\\u0000b"): for a key
                 no argument can hold (NUL)
  -h, --help     Show this help

Options go before --; whatever follows it is KEY or VALUE, even when it starts with '-':
slabkv get -- -k. Exit codes: 0 done, 1 no such key, 2 usage error (or the server refused the
key or value: too large, say), 3 the server could not be reached or failed.
`

const walHelp = (
  action: string,
  what: string,
  exits: string,
) => `Usage: slabkv wal ${action} DIR [options]

${what}
It replays the log as a start would: give it the limits the server runs with (serve's options,
listed by slabkv serve --help, or SLABKV_* variables).

Exit codes: ${exits}
`

const commandHelp: Record<string, string> = {
  get: `Usage: slabkv get [options] [--] KEY

Writes the value's bytes to stdout. For a key that does not exist, prints "not found: KEY" on
stderr and exits 1.

${clientOptionsHelp()}`,
  set: `Usage: slabkv set [options] [--] KEY VALUE|-

Stores VALUE under KEY; - reads the value's bytes from stdin.

${clientOptionsHelp(`  --ttl SECONDS  Expire the key after SECONDS: a positive decimal number (fractions allowed)
                 of at most 1000000000000
`)}`,
  del: `Usage: slabkv del [options] [--] KEY

Deletes KEY. For a key that does not exist, prints "not found: KEY" on stderr and exits 1.

${clientOptionsHelp()}`,
  ls: `Usage: slabkv ls [options] [--] [PREFIX]

Lists the keys that start with PREFIX (every key without one), one per line, in no particular
order. With --json each key is printed as a JSON string (and PREFIX is read as one), so that a
key with a line break stays on one line.

${clientOptionsHelp()}`,
  'wal check': walHelp(
    'check',
    "Reports the state of DIR's log and changes nothing.",
    '0 clean, 1 a torn tail (a start cuts it by itself), 2 usage error, 4 corrupt,\nor a record the limits refuse (a start refuses it too).',
  ),
  'wal repair': walHelp(
    'repair',
    'Cuts a corrupt log at the damage, keeping every cut byte (and any later segment) in .broken\nfiles; the records after the damage are then lost. Never while a server runs there.',
    '0 repaired (or nothing to repair), 1 a server holds DIR or there is no room\nto keep the cut bytes, 2 usage error, 4 nothing can be cut (a record the limits refuse, a\ndamaged snapshot).',
  ),
}

/** serve's options (each flag and --help), and the positionals after them. */
function parseServeOptions(argv: string[], positionalsAllowed: boolean) {
  const options = Object.fromEntries([
    ...optionSpecs.map((spec) => [spec.flag, { type: 'string' as const }]),
    ['help', { type: 'boolean' as const, short: 'h' }],
  ])
  const parsed = parseArgs({ args: argv, options, allowPositionals: positionalsAllowed })
  return {
    values: parsed.values as Record<string, string | boolean | undefined>,
    positionals: parsed.positionals,
  }
}

async function serve(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseServeOptions(argv, false).values
  } catch (error) {
    process.stderr.write(`slabkv serve: ${(error as Error).message}\n\n${helpText()}`)
    return exitUsage
  }
  if (values.help) {
    process.stdout.write(helpText())
    return exitOk
  }
  const log = createLog()
  const resolved = resolveConfig(values as Record<string, string | undefined>, process.env)
  if (!resolved.ok) {
    log.error('invalid configuration', { error: resolved.message })
    return exitUsage
  }
  // Loaded here, not at the top: the client commands need none of the server's modules, and
  // loading them costs a few hundred milliseconds per command.
  const { start } = await import('./main.js')
  // Listening before the start: 'listening' is logged inside start(), and a SIGTERM sent the
  // moment it appears would otherwise meet no handler and kill the process outright. A signal
  // that comes while starting stops the server as soon as it serves.
  const stopRequested = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info('stopping', { signal })
      resolve()
    }
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.once('SIGINT', () => shutdown('SIGINT'))
  })
  let running: Awaited<ReturnType<typeof start>>
  try {
    running = await start(resolved.config, log)
  } catch (error) {
    const { CorruptLogError } = await import('./wal/recovery.js')
    if (error instanceof CorruptLogError) {
      const { walExitCorrupt } = await import('./wal/admin.js')
      const what =
        error.damage.kind === 'corrupt'
          ? 'refusing to start: the log is corrupt'
          : 'refusing to start: a logged record does not fit the limits'
      log.error(what, { error: error.message, ...error.damage })
      return walExitCorrupt
    }
    log.error('could not start', { error: (error as Error).message })
    return exitFailed
  }
  await stopRequested
  await running.stop()
  log.info('stopped')
  return exitOk
}

/**
 * A key as the last segment of a request path: the UTF-8 of every character but the unreserved
 * ones percent-encoded ('/' as %2F, '%' as %25), since the server reads the key from the target
 * as sent (src/http/path-key.ts). '.' and '..' go as %2E and %2E%2E: the server takes those
 * spellings, and a URL parser is never given the path (see send), which would drop them as dot
 * segments even so.
 */
function keySegment(key: string): string {
  const encoded = encodeURIComponent(key).replace(
    /[!'()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return key === '.' || key === '..' ? encoded.replaceAll('.', '%2E') : encoded
}

/** The request could not be made, or its answer not read: no server there, or a broken connection. */
class RequestError extends Error {}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/**
 * One request to the server, its answer read whole. node:http, not fetch: fetch parses the URL,
 * and a URL parser removes a last segment of '.' or '..' (or %2E, %2E%2E) before sending, so
 * those keys could never be reached; http.request sends the path exactly as given.
 */
async function send(
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Uint8Array,
): Promise<Answer> {
  const request = base.protocol === 'https:' ? (await import('node:https')).request : httpRequest
  const options: RequestOptions = {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'), // An IPv6 literal, without brackets.
    port: base.port,
    method,
    path: base.pathname.replace(/\/$/, '') + path,
    headers: body === undefined ? headers : { ...headers, 'Content-Length': body.byteLength },
  }
  if (base.username !== '' || base.password !== '') {
    options.auth = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`
  }
  return new Promise((resolve, reject) => {
    const outgoing = request(options, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('error', (error) => reject(new RequestError(error.message)))
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks),
        }),
      )
    })
    outgoing.on('error', (error) => reject(new RequestError(error.message)))
    outgoing.end(body)
  })
}

/** The problem+json body of an answer (src/errors.ts), or undefined when it is not one. */
function problemOf(answer: Answer): { code?: string; title?: string; detail?: string } | undefined {
  if (!/^application\/problem\+json\b/i.test(answer.headers['content-type'] ?? '')) return undefined
  try {
    const parsed: unknown = JSON.parse(answer.body.toString('utf8'))
    return parsed !== null && typeof parsed === 'object' ? parsed : undefined
  } catch {
    return undefined
  }
}

/** Refusals of what the command was given (the key, the value, the TTL): usage errors. */
const argumentRefusals = new Set([
  'key_empty',
  'key_invalid',
  'key_too_large',
  'ttl_invalid',
  'value_too_large',
  'body_too_large',
])

/** Says why the server did not do it, in words (never the raw body); exit 2 or 3. */
function serverError(command: string, answer: Answer): number {
  const problem = problemOf(answer)
  if (problem === undefined) {
    const text = answer.body.toString('utf8').trim().slice(0, 200)
    process.stderr.write(
      `slabkv ${command}: the server answered ${answer.status}${text === '' ? '' : `: ${text}`}\n`,
    )
    return exitServer
  }
  const what = problem.detail ?? problem.title ?? 'no reason given'
  process.stderr.write(`slabkv ${command}: ${what} (${problem.code ?? answer.status})\n`)
  return problem.code !== undefined && argumentRefusals.has(problem.code) ? exitUsage : exitServer
}

/** True when the answer is the server's 404 for a missing key, not for a missing route. */
function isNotFound(answer: Answer): boolean {
  return answer.status === 404 && problemOf(answer)?.code === 'not_found'
}

/** Every client command takes these; `set` takes --ttl too. */
const clientOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

type ClientCommand = 'get' | 'set' | 'del' | 'ls'

async function client(command: ClientCommand, argv: string[]): Promise<number> {
  const usageError = (message: string) => {
    const synopsis = commandHelp[command]!.split('\n')[0]
    process.stderr.write(
      `slabkv ${command}: ${message}\n${synopsis}\n(slabkv ${command} --help says more)\n`,
    )
    return exitUsage
  }
  let values: { url?: string; token?: string; json?: boolean; help?: boolean; ttl?: string }
  let positionals: string[]
  try {
    const parsed = parseArgs({
      args: argv,
      // --ttl is an option of set alone: given to another command it is refused, not ignored.
      options: command === 'set' ? { ...clientOptions, ttl: { type: 'string' } } : clientOptions,
      allowPositionals: true,
    })
    values = parsed.values as typeof values
    positionals = parsed.positionals
  } catch (error) {
    return usageError((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(commandHelp[command]!)
    return exitOk
  }
  const arity = { get: 1, set: 2, del: 1, ls: 0 }[command]
  if (command === 'ls' ? positionals.length > 1 : positionals.length !== arity) {
    return usageError('wrong arguments')
  }
  let base: URL
  const url = values.url ?? process.env[envName('url')] ?? 'http://127.0.0.1:8000'
  const urlSource = values.url === undefined ? envName('url') : '--url'
  try {
    base = new URL(url)
  } catch {
    return usageError(`${urlSource} ${url} is not a URL`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    return usageError(`${urlSource} ${url} is not an http: or https: URL`)
  }
  let ttl = ''
  if (values.ttl !== undefined) {
    // The server's own check, made before anything is sent.
    if (Number.isNaN(parseTtlSeconds(values.ttl))) {
      return usageError(`--ttl ${JSON.stringify(values.ttl)}: ${ttlRefusal}`)
    }
    ttl = `?ttl=${values.ttl}`
  }
  const [keyText = '', value] = positionals
  // ls without a PREFIX lists every key, --json or not.
  const key = values.json && positionals.length > 0 ? jsonString(keyText) : keyText
  if (key === undefined) {
    return usageError(`--json: ${keyText} is not a JSON string (such as "a\\u0000b")`)
  }
  if (command !== 'ls' && key === '') return usageError('the key is empty')
  // A lone surrogate has no UTF-8: sent as U+FFFD, it would name another key.
  if (!key.isWellFormed()) return usageError('the key has a lone surrogate, which no key can have')
  const token = values.token ?? process.env[envName('token')]
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {}
  const keyPath = `/v1/kv/${keySegment(key)}`
  try {
    if (command === 'get') {
      const answer = await send(base, 'GET', keyPath, headers)
      if (isNotFound(answer)) {
        process.stderr.write(`not found: ${keyText}\n`)
        return exitNotFound
      }
      if (answer.status !== 200) return serverError(command, answer)
      process.stdout.write(answer.body)
      return exitOk
    }
    if (command === 'set') {
      const body = value === '-' ? readFileSync(0) : Buffer.from(value!, 'utf8')
      const answer = await send(base, 'PUT', keyPath + ttl, headers, body)
      if (answer.status === 412) return exitNotFound
      return answer.status === 200 || answer.status === 201 ? 0 : serverError(command, answer)
    }
    if (command === 'del') {
      const answer = await send(base, 'DELETE', keyPath, headers)
      if (isNotFound(answer)) {
        process.stderr.write(`not found: ${keyText}\n`)
        return exitNotFound
      }
      return answer.status >= 200 && answer.status < 300 ? 0 : serverError(command, answer)
    }
    let cursor: string | null = '0'
    const prefix = keySegment(key)
    while (cursor !== null) {
      const answer = await send(
        base,
        'GET',
        `/v1/kv?prefix=${prefix}&cursor=${cursor}&limit=1000`,
        headers,
      )
      if (answer.status !== 200) return serverError(command, answer)
      const page = JSON.parse(answer.body.toString('utf8')) as {
        items: { key: string }[]
        cursor: string | null
      }
      const lines = page.items.map((item) => (values.json ? JSON.stringify(item.key) : item.key))
      if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
      cursor = page.cursor
    }
    return exitOk
  } catch (error) {
    const what =
      error instanceof RequestError ? `cannot reach ${base.origin}` : 'cannot read the answer'
    process.stderr.write(`slabkv ${command}: ${what}: ${(error as Error).message}\n`)
    return exitServer
  }
}

/** The string a JSON string literal spells, or undefined when the text is not one. */
function jsonString(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === 'string' ? parsed : undefined
  } catch {
    return undefined
  }
}

async function wal(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseServeOptions>
  try {
    parsed = parseServeOptions(argv, true)
  } catch (error) {
    process.stderr.write(`slabkv wal: ${(error as Error).message}\n\n${usage}`)
    return exitUsage
  }
  const [action, dir, ...extra] = parsed.positionals
  if (parsed.values.help) {
    process.stdout.write(commandHelp[`wal ${action}`] ?? usage)
    return exitOk
  }
  if ((action !== 'check' && action !== 'repair') || dir === undefined || extra.length > 0) {
    process.stderr.write(`slabkv wal: expected 'check DIR' or 'repair DIR'\n\n${usage}`)
    return exitUsage
  }
  // A path that is not a directory holds no log: say so, rather than fail deep in a read.
  if (statSync(dir, { throwIfNoEntry: false })?.isDirectory() === false) {
    process.stderr.write(`slabkv wal ${action}: ${dir} is not a directory\n`)
    return exitUsage
  }
  // The limits a start would use: the same options and environment as serve.
  const resolved = resolveConfig(parsed.values as Record<string, string | undefined>, process.env)
  if (!resolved.ok) {
    process.stderr.write(`slabkv wal: ${resolved.message}\n`)
    return exitUsage
  }
  const limits = storeLimitsOf(resolved.config)
  const { walCheck, walRepair } = await import('./wal/admin.js')
  const { realStorage } = await import('./wal/storage.js')
  const print = (line: string) => process.stdout.write(`${line}\n`)
  if (action === 'check') return walCheck(realStorage, dir, print, limits)
  // A repair cuts files: never under a running server. (A missing directory has nothing to cut.)
  const { DataDirInUseError, lockDataDir } = await import('./wal/dir-lock.js')
  let unlock: () => void
  try {
    unlock = realStorage.exists(dir) ? lockDataDir(dir) : () => {}
  } catch (error) {
    if (error instanceof DataDirInUseError) {
      process.stderr.write(`slabkv wal repair: ${error.message}\n`)
      return exitFailed
    }
    // A read-only directory has no server writing to it: a clean log needs no repair, and a
    // cut fails there by itself with its own message.
    if ((error as NodeJS.ErrnoException).code !== 'EROFS') {
      process.stderr.write(`slabkv wal repair: cannot lock ${dir}: ${(error as Error).message}\n`)
      return exitFailed
    }
    unlock = () => {}
  }
  const { CutNotKeptError } = await import('./wal/recovery.js')
  try {
    return walRepair(realStorage, dir, print, limits)
  } catch (error) {
    if (!(error instanceof CutNotKeptError)) throw error
    process.stderr.write(`slabkv wal repair: ${error.message}\n`)
    return exitFailed
  } finally {
    unlock()
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${packageVersion}\n`)
    return exitOk
  }
  if (command === '--help' || command === '-h') {
    process.stdout.write(usage)
    return exitOk
  }
  if (command === 'serve') return serve(rest)
  if (command === 'wal') return wal(rest)
  if (command === 'get' || command === 'set' || command === 'del' || command === 'ls')
    return client(command, rest)
  process.stderr.write(
    command === undefined ? usage : `slabkv: unknown command '${command}'\n\n${usage}`,
  )
  return exitUsage
}

process.exitCode = await main(process.argv.slice(2))
