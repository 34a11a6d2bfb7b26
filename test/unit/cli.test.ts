import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

// Runs the compiled bin, as npm would install it; `npm test` builds dist/ first.
const cli = new URL('../../dist/src/cli.js', import.meta.url)

function run(...args: string[]) {
  if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run npm run build first')
  return spawnSync(process.execPath, [cli.pathname, ...args], { encoding: 'utf8' })
}

describe('slabkv command', () => {
  it('prints the package version', () => {
    const version = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string
      }
    ).version
    const result = run('--version')
    expect(result.status).toBe(0)
    expect(result.stdout.trim()).toBe(version)
  })

  it('prints usage with --help and exits 0', () => {
    const result = run('--help')
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/^Usage: slabkv/)
  })

  it("prints each command's own help on stdout with --help or -h, and exits 0", () => {
    const commands = [
      ['get'],
      ['set'],
      ['del'],
      ['ls'],
      ['watch'],
      ['wal', 'check'],
      ['wal', 'repair'],
    ]
    for (const command of [...commands, ['serve']]) {
      for (const flag of ['--help', '-h']) {
        const result = run(...command, flag)
        const what = `slabkv ${command.join(' ')} ${flag}`
        expect(result.status, `${what}: ${result.stderr}`).toBe(0)
        expect(result.stderr, what).toBe('')
        expect(result.stdout, what).toMatch(/^Usage: slabkv /)
      }
    }
    // Each says how its own command is used, not just that there are commands.
    for (const command of commands) {
      expect(run(...command, '--help').stdout).toMatch(
        new RegExp(`^Usage: slabkv ${command.join(' ')} `),
      )
    }
    expect(run('get', 'some-key', '--help').status).toBe(0)
  })

  it('refuses an unknown command or option with exit code 2', () => {
    expect(run('frobnicate').status).toBe(2)
    expect(run('--frobnicate').stderr).toMatch(/--frobnicate/)
    expect(run('serve', '--frobnicate').status).toBe(2)
    expect(run().status).toBe(2)
  })
})
