import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanEnv, cliPath, killAll, startServer } from '../support/server.js'

// The README's quick start, run as a newcomer would copy it: every command of its shell blocks,
// in order, against a real server (the one `npm install && npm start` would start, on a port of
// the test's own). A line `# → text` under a command is what the command must print; every
// command must exit 0. So the examples cannot drift from what the server does.

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

interface Example {
  command: string
  expected: string[]
}

/** The commands of the shell blocks between `## Quick start` and the next section. */
function quickStartExamples(): Example[] {
  const start = readme.indexOf('\n## Quick start\n')
  const end = readme.indexOf('\n## ', start + 1)
  expect(start, 'README has a Quick start section').toBeGreaterThan(-1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  const examples: Example[] = []
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = block[1]!.replace(/\\\n\s*/g, '').split('\n')
    for (const line of lines) {
      const expected = /^# → (.*)$/.exec(line)
      if (expected !== null) examples.at(-1)?.expected.push(expected[1]!)
      else if (line.trim() !== '' && !line.startsWith('#'))
        examples.push({ command: line, expected: [] })
    }
  }
  return examples
}

afterAll(killAll)

describe("the README's quick start", () => {
  it('runs as written against a real server, printing what it says', async () => {
    const examples = quickStartExamples()
    const [install, ...commands] = examples
    // The first command starts the server; the test starts the same one on a port of its own.
    expect(install?.command).toMatch(/^npm install && npm start\b/)
    expect(commands.length).toBeGreaterThanOrEqual(12)
    const server = await startServer()
    const address = `127.0.0.1:${server.port}`
    const problems: string[] = []
    for (const { command, expected } of commands) {
      const runnable = command
        .replaceAll('localhost:8000', address)
        .replaceAll('npx slabkv', `${JSON.stringify(process.execPath)} ${JSON.stringify(cliPath)}`)
      const result = spawnSync('bash', ['-c', runnable], {
        encoding: 'utf8',
        env: cleanEnv({ SLABKV_URL: `http://${address}` }),
        timeout: 10_000,
      })
      const output = `${result.stdout}${result.stderr}`
      if (result.status !== 0) problems.push(`${command} → exit ${result.status}: ${output}`)
      for (const text of expected) {
        if (!output.includes(text)) problems.push(`${command} → wanted ${text}, got: ${output}`)
      }
    }
    expect(problems).toEqual([])
    expect(await server.stop()).toBe(0)
  })
})
