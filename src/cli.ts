#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

// The slabkv command. Subcommands arrive with the features they drive: `serve` with the HTTP
// server, `wal check|repair` with the write-ahead log. Exit codes: 0 success, 2 usage error.

const usage = `Usage: slabkv <command> [options]

Commands:
  (none yet)   The server (slabkv serve) is not built yet; see README.md.

Options:
  -h, --help     Show this help
  -v, --version  Show the version
`

function version(): string {
  const packageJson = new URL('../../package.json', import.meta.url)
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version
}

export function main(argv: string[]): number {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
      allowPositionals: true,
    })
  } catch (error) {
    process.stderr.write(`slabkv: ${(error as Error).message}\n\n${usage}`)
    return 2
  }
  if (parsed.values.version) {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  if (parsed.values.help) {
    process.stdout.write(usage)
    return 0
  }
  const [command] = parsed.positionals
  process.stderr.write(
    command === undefined ? usage : `slabkv: unknown command '${command}'\n\n${usage}`,
  )
  return 2
}

process.exitCode = main(process.argv.slice(2))
