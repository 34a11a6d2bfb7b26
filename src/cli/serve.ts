import { parseArgs } from 'node:util'
import { helpText, optionSpecs, resolveConfig } from '../config.js'
import { exitFailed, exitOk, exitUsage } from '../exit-codes.js'
import { createLog } from '../log.js'

// slabkv serve: the server's options, then the server until SIGTERM or SIGINT. The server's
// modules load only here, so that the client commands start fast.

/** serve's options (each flag and --help), and the positionals after them. */
export function parseServeOptions(argv: string[], positionalsAllowed: boolean) {
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

export async function serve(argv: string[]): Promise<number> {
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
  const { start } = await import('../main.js')
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
    const { CorruptLogError } = await import('../wal/recovery.js')
    if (error instanceof CorruptLogError) {
      const { walExitCorrupt } = await import('../wal/admin.js')
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
