import { statSync } from 'node:fs'
import { resolveConfig, storeLimitsOf } from '../config.js'
import { exitFailed, exitOk, exitUsage } from '../exit-codes.js'
import { commandHelp, usage } from './help.js'
import { parseServeOptions } from './serve.js'

// slabkv wal check|repair DIR: a data directory's log, replayed as a start would with the
// limits the server runs with.

export async function wal(argv: string[]): Promise<number> {
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
  // A path that is not a directory holds no log: say so, rather than fail deep in a read. A
  // missing one is most likely a mistyped path, which must not be reported clean.
  const stat = statSync(dir, { throwIfNoEntry: false })
  if (stat?.isDirectory() !== true) {
    const what = stat === undefined ? 'does not exist' : 'is not a directory'
    process.stderr.write(`slabkv wal ${action}: ${dir} ${what}\n`)
    return exitUsage
  }
  // The limits a start would use: the same options and environment as serve.
  const resolved = resolveConfig(parsed.values as Record<string, string | undefined>, process.env)
  if (!resolved.ok) {
    process.stderr.write(`slabkv wal: ${resolved.message}\n`)
    return exitUsage
  }
  const limits = storeLimitsOf(resolved.config)
  const { walCheck, walRepair } = await import('../wal/admin.js')
  const { realStorage } = await import('../wal/storage.js')
  const print = (line: string) => process.stdout.write(`${line}\n`)
  if (action === 'check') return walCheck(realStorage, dir, print, limits)
  // A repair cuts files: never under a running server.
  const { DataDirInUseError, lockDataDir } = await import('../wal/dir-lock.js')
  let unlock: () => void
  try {
    unlock = lockDataDir(dir)
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
  const { CutNotKeptError } = await import('../wal/recovery.js')
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
