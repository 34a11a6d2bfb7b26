#!/usr/bin/env node
import { client } from './cli/client.js'
import { usage } from './cli/help.js'
import { serve } from './cli/serve.js'
import { wal } from './cli/wal.js'
import { watch } from './cli/watch.js'
import { exitOk, exitUsage } from './exit-codes.js'
import { packageVersion } from './package.js'

// The slabkv command: `serve` runs the server (src/cli/serve.ts); get, set, del and ls are a
// terminal client for a running one (src/cli/client.ts), and `watch` follows its changes
// (src/cli/watch.ts); `wal check|repair` inspect a data directory (src/cli/wal.ts). Exit
// codes: src/exit-codes.ts.

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
  if (command === 'watch') return watch(rest)
  if (command === 'get' || command === 'set' || command === 'del' || command === 'ls')
    return client(command, rest)
  process.stderr.write(
    command === undefined ? usage : `slabkv: unknown command '${command}'\n\n${usage}`,
  )
  return exitUsage
}

process.exitCode = await main(process.argv.slice(2))
