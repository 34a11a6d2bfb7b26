#!/usr/bin/env node
import { readFileSync, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { envName, helpText, optionSpecs, resolveConfig, storeLimitsOf } from './config.js'
import { createLog } from './log.js'

// The slabkv command: `serve` runs the server; get, set, del and ls are a terminal client for
// a running one; `wal check|repair` inspect a data directory. Exit codes a script can rely on:
// 0 done, 1 no such key (or a failed condition; for wal check, a torn tail), 2 usage or
// configuration error, 3 the server could not be reached or failed, 4 the log is corrupt (serve
// refuses to start; wal check found it), 5 the log failed while serving (a failed sync).

const exitNotFound = 1
const exitUsage = 2
const exitServer = 3

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

  -h, --help     Show this help
  -v, --version  Show the version
`

function version(): string {
  const packageJson = new URL('../../package.json', import.meta.url)
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version
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
    return 0
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
    return 1
  }
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info('stopping', { signal })
      resolve()
    }
    process.once('SIGTERM', () => shutdown('SIGTERM'))
    process.once('SIGINT', () => shutdown('SIGINT'))
  })
  await running.stop()
  log.info('stopped')
  return 0
}

async function client(command: string, argv: string[]): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{
      options: { url: { type: 'string' }; token: { type: 'string' }; ttl: { type: 'string' } }
      allowPositionals: true
    }>
  >
  try {
    parsed = parseArgs({
      args: argv,
      options: { url: { type: 'string' }, token: { type: 'string' }, ttl: { type: 'string' } },
      allowPositionals: true,
    })
  } catch (error) {
    process.stderr.write(`slabkv ${command}: ${(error as Error).message}\n`)
    return exitUsage
  }
  const { values, positionals } = parsed
  const base = (values.url ?? process.env[envName('url')] ?? 'http://127.0.0.1:8000').replace(
    /\/$/,
    '',
  )
  const token = values.token ?? process.env[envName('token')]
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {}
  const [key, value] = positionals
  const arity = { get: 1, set: 2, del: 1, ls: 0 }[command] ?? 0
  if (
    (command === 'ls' ? positionals.length > 1 : positionals.length !== arity) ||
    (key === '' && command !== 'ls')
  ) {
    process.stderr.write(`slabkv ${command}: wrong arguments\n\n${usage}`)
    return exitUsage
  }
  const keyUrl = (k: string) => `${base}/v1/kv/${encodeURIComponent(k)}`
  try {
    if (command === 'get') {
      const response = await fetch(keyUrl(key!), { headers })
      if (response.status === 404) return exitNotFound
      if (!response.ok) return serverError(response)
      process.stdout.write(new Uint8Array(await response.arrayBuffer()))
      return 0
    }
    if (command === 'set') {
      const body = value === '-' ? readFileSync(0) : Buffer.from(value!, 'utf8')
      const query = values.ttl === undefined ? '' : `?ttl=${encodeURIComponent(values.ttl)}`
      const response = await fetch(keyUrl(key!) + query, { method: 'PUT', headers, body })
      if (response.status === 412) return exitNotFound
      return response.ok ? 0 : serverError(response)
    }
    if (command === 'del') {
      const response = await fetch(keyUrl(key!), { method: 'DELETE', headers })
      if (response.status === 404) return exitNotFound
      return response.ok ? 0 : serverError(response)
    }
    let cursor: string | null = '0'
    const prefix = encodeURIComponent(key ?? '')
    while (cursor !== null) {
      const response = await fetch(`${base}/v1/kv?prefix=${prefix}&cursor=${cursor}&limit=1000`, {
        headers,
      })
      if (!response.ok) return serverError(response)
      const page = (await response.json()) as { items: { key: string }[]; cursor: string | null }
      for (const item of page.items) process.stdout.write(`${item.key}\n`)
      cursor = page.cursor
    }
    return 0
  } catch (error) {
    process.stderr.write(
      `slabkv ${command}: cannot reach ${base}: ${(error as Error).cause ?? (error as Error).message}\n`,
    )
    return exitServer
  }
}

async function serverError(response: Response): Promise<number> {
  process.stderr.write(`slabkv: the server answered ${response.status}: ${await response.text()}\n`)
  return exitServer
}

async function wal(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseServeOptions>
  try {
    parsed = parseServeOptions(argv, true)
  } catch (error) {
    process.stderr.write(`slabkv wal: ${(error as Error).message}\n\n${usage}`)
    return exitUsage
  }
  if (parsed.values.help) {
    process.stdout.write(usage)
    return 0
  }
  const [action, dir, ...extra] = parsed.positionals
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
      return 1
    }
    // A read-only directory has no server writing to it: a clean log needs no repair, and a
    // cut fails there by itself with its own message.
    if ((error as NodeJS.ErrnoException).code !== 'EROFS') {
      process.stderr.write(`slabkv wal repair: cannot lock ${dir}: ${(error as Error).message}\n`)
      return 1
    }
    unlock = () => {}
  }
  const { CutNotKeptError } = await import('./wal/recovery.js')
  try {
    return walRepair(realStorage, dir, print, limits)
  } catch (error) {
    if (!(error instanceof CutNotKeptError)) throw error
    process.stderr.write(`slabkv wal repair: ${error.message}\n`)
    return 1
  } finally {
    unlock()
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  if (command === '--help' || command === '-h') {
    process.stdout.write(usage)
    return 0
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
