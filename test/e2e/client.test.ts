import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { awkwardKeys } from '../support/awkward-keys.js'
import { testSeed } from '../support/random.js'
import {
  freePort,
  keyPath,
  killAll,
  type RunningServer,
  runCli,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'

// docs/configuration.md, "The slabkv command": get, set, del and ls against a running server, and their exit
// codes (0 done, 1 no such key, 2 usage error, 3 unreachable or an error answer).

afterAll(async () => {
  await killAll()
})

describe('terminal client', () => {
  let server: RunningServer
  let url: string[]

  beforeAll(async () => {
    server = await startServer()
    url = ['--url', server.url]
  })

  afterAll(async () => {
    await server?.stop()
  })

  it('sets a key and gets its bytes back on stdout, exiting 0', async () => {
    const key = uniqueKey('cli')
    const set = await runCli(['set', key, 'v', ...url])
    expect(set.code, set.stderr).toBe(0)
    const get = await runCli(['get', key, ...url])
    expect(get.code, get.stderr).toBe(0)
    expect(get.stdout).toBe('v')
  })

  it('exits 1 for get of a missing key', async () => {
    const get = await runCli(['get', uniqueKey('cli-missing'), ...url])
    expect(get.code, get.stderr).toBe(1)
    expect(get.stdout).toBe('')
  })

  it('says "not found: KEY" on stderr for get and del of a missing key, exiting 1', async () => {
    const key = uniqueKey('cli-missing')
    for (const command of ['get', 'del']) {
      const result = await runCli([command, key, ...url])
      expect(result.code, `${command}: ${result.stderr}`).toBe(1)
      expect(result.stdout).toBe('')
      expect(result.stderr).toBe(`not found: ${key}\n`)
    }
  })

  it('deletes a key with exit 0, then exits 1 for a second delete', async () => {
    const key = uniqueKey('cli-del')
    expect((await runCli(['set', key, 'v', ...url])).code).toBe(0)
    const first = await runCli(['del', key, ...url])
    expect(first.code, first.stderr).toBe(0)
    const second = await runCli(['del', key, ...url])
    expect(second.code, second.stderr).toBe(1)
    expect((await runCli(['get', key, ...url])).code).toBe(1)
  })

  it('lists the keys with a prefix', async () => {
    const prefix = `${uniqueKey('cli-ls')}/`
    const keys = [`${prefix}a`, `${prefix}b c`, `${prefix}ü`]
    const sets = await Promise.all(
      [...keys, `${prefix.slice(0, -1)}-other`].map((key) => runCli(['set', key, 'v', ...url])),
    )
    expect(sets.map((set) => set.code)).toEqual([0, 0, 0, 0])
    const ls = await runCli(['ls', prefix, ...url])
    expect(ls.code, ls.stderr).toBe(0)
    const listed = ls.stdout.split('\n').filter((line) => line !== '')
    expect(listed.sort()).toEqual([...keys].sort())
    const all = await runCli(['ls', ...url])
    expect(all.code).toBe(0)
    for (const key of keys) expect(all.stdout).toContain(key)
  })

  it("handles keys with '/' and values read from stdin with -", async () => {
    const key = `${uniqueKey('cli-stdin')}/a b/ü`
    const value = 'line one\nline two\n'
    const set = await runCli(['set', key, '-', ...url], { input: value })
    expect(set.code, set.stderr).toBe(0)
    const get = await runCli(['get', key, ...url])
    expect(get.code, get.stderr).toBe(0)
    expect(get.stdout).toBe(value)
  })

  it('sets a ttl with --ttl, after which get exits 1', async () => {
    const lasting = uniqueKey('cli-ttl-long')
    expect((await runCli(['set', lasting, 'v', '--ttl', '60', ...url])).code).toBe(0)
    const response = await fetch(`${server.url}/v1/kv/${keyPath(lasting)}`)
    await response.arrayBuffer()
    const ttl = Number(response.headers.get('slabkv-ttl'))
    expect(ttl).toBeGreaterThan(50)
    expect(ttl).toBeLessThanOrEqual(60)
    const key = uniqueKey('cli-ttl')
    const set = await runCli(['set', key, 'v', '--ttl', '1', ...url])
    expect(set.code, set.stderr).toBe(0)
    // The server set the expiry before it answered, before the command exited.
    await sleep(1100)
    expect((await runCli(['get', key, ...url])).code).toBe(1)
  })

  it('takes the server address from SLABKV_URL', async () => {
    const key = uniqueKey('cli-env')
    const env = { SLABKV_URL: server.url }
    expect((await runCli(['set', key, 'from env'], { env })).code).toBe(0)
    const get = await runCli(['get', key], { env })
    expect(get.code, get.stderr).toBe(0)
    expect(get.stdout).toBe('from env')
  })

  it('exits 3 when the server cannot be reached', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`
    const commands = [['get', 'k'], ['set', 'k', 'v'], ['del', 'k'], ['ls']]
    const results = await Promise.all(commands.map((args) => runCli([...args, '--url', closed])))
    expect(results.map((result, i) => `${commands[i]!.join(' ')} → ${result.code}`)).toEqual(
      commands.map((args) => `${args.join(' ')} → 3`),
    )
  })

  it('refuses a bad option value or an unknown option as a usage error: a message, exit 2', async () => {
    const key = uniqueKey('cli-usage')
    const commands = [
      ['set', key, 'v', '--ttl', 'abc'],
      ['set', key, 'v', '--ttl', '0'],
      ['set', key, 'v', '--ttl', '-1'],
      ['set', key, 'v', '--ttl=-1'],
      ['set', key, 'v', '--ttl', '1e3'],
      ['set', key, 'v', '--ttl', ''],
      ['set', key, 'v', '--ttl', '1000000000000.5'],
      ['set', key, 'v', '--ttl'],
      ['set', key, 'v', '--frobnicate'],
      ['get', key, '--ttl', '5'],
      ['get', key, '--url', 'not a url'],
      ['ls', '--limit', '5'],
    ]
    // The server's address first: the --url of the command (a bad one) comes later and wins.
    const results = await Promise.all(
      commands.map(([command, ...args]) => runCli([command!, ...url, ...args])),
    )
    for (const [i, result] of results.entries()) {
      const what = `slabkv ${commands[i]!.join(' ')}`
      expect(result.code, `${what}: ${result.stderr}`).toBe(2)
      expect(result.stdout, what).toBe('')
      expect(result.stderr, what).toMatch(/^slabkv \w+: /)
      expect(result.stderr, `${what}: no raw JSON`).not.toMatch(/[{}]/)
    }
    expect(results[0]!.stderr).toMatch(/--ttl/)
    // None was sent: the key was never set.
    expect((await runCli(['get', key, ...url])).code).toBe(1)
    // A TTL the server takes is taken: fractions, and the largest.
    const fractional = await runCli(['set', key, 'v', '--ttl', '0.5', ...url])
    expect(fractional.code, fractional.stderr).toBe(0)
    const largest = await runCli(['set', key, 'v', '--ttl', '1000000000000', ...url])
    expect(largest.code, largest.stderr).toBe(0)
  })

  it("explains the server's refusal of an argument, without raw JSON, exiting 2", async () => {
    // The key size limit is the server's (--max-key-size, 1024 bytes by default).
    const tooLarge = 'k'.repeat(1025)
    const results = await Promise.all(
      [
        ['get', tooLarge],
        ['set', tooLarge, 'v'],
        ['del', tooLarge],
      ].map((args) => runCli([...args, ...url])),
    )
    for (const result of results) {
      expect(result.code, result.stderr).toBe(2)
      expect(result.stderr).toMatch(/1025 bytes.*1024 bytes/)
      expect(result.stderr).not.toMatch(/[{}]/)
    }
  })

  it("reaches keys that start with '-' after --", async () => {
    for (const key of ['-k', '--', '-', '--ttl']) {
      const set = await runCli(['set', ...url, '--', key, `value of ${key}`])
      expect(set.code, `${key}: ${set.stderr}`).toBe(0)
      const get = await runCli(['get', ...url, '--', key])
      expect(get.code, `${key}: ${get.stderr}`).toBe(0)
      expect(get.stdout).toBe(`value of ${key}`)
      const del = await runCli(['del', ...url, '--', key])
      expect(del.code, `${key}: ${del.stderr}`).toBe(0)
    }
    // A value that starts with '-' too.
    const key = uniqueKey('cli-dash')
    expect((await runCli(['set', ...url, '--', key, '-5'])).code).toBe(0)
    expect((await runCli(['get', key, ...url])).stdout).toBe('-5')
  })

  it('exits 2 for a usage error', async () => {
    const commands = [['get'], ['set', 'k'], ['del'], ['frobnicate', 'k'], ['get', 'a', 'b']]
    const results = await Promise.all(commands.map((args) => runCli([...args, ...url])))
    expect(results.map((result, i) => `${commands[i]!.join(' ')} → ${result.code}`)).toEqual(
      commands.map((args) => `${args.join(' ')} → 2`),
    )
  })
})

// Every key the store takes must work from the CLI. The server reads a key from the request
// target as sent (src/http/path-key.ts), so the client must percent-encode every byte that is
// not unreserved and send '.' and '..' without a URL parser removing them as dot segments.

/** Runs `slabkv` on each key with at most `width` processes at once, in the keys' order. */
async function eachKey<T>(
  keys: string[],
  width: number,
  task: (key: string, i: number) => Promise<T>,
) {
  const results: T[] = []
  let next = 0
  const worker = async () => {
    while (next < keys.length) {
      const i = next++
      results[i] = await task(keys[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: width }, worker))
  return results
}

/** The arguments that name a key: with --json for a key with NUL, which no argument can hold. */
function keyArgs(key: string, json: boolean): string[] {
  return json || key.includes('\0') ? ['--json', '--', JSON.stringify(key)] : ['--', key]
}

/**
 * Each key through the binary: set (its value from stdin), get, one `ls --json` that must list
 * them all, del, and one more that must list none; what went wrong, as lines. `json` names the
 * keys sent as `ls --json` prints them.
 */
async function roundTrips(url: string[], keys: string[], json: Set<string> = new Set()) {
  const failures: string[] = []
  const each = (
    step: string,
    args: (key: string, i: number) => string[],
    want: (i: number) => { code: number; stdout?: string },
    input?: (i: number) => string,
  ) =>
    eachKey(keys, 2, async (key, i) => {
      const result = await runCli(args(key, i), { input: input?.(i) })
      const { code, stdout } = want(i)
      if (result.code !== code || (stdout !== undefined && result.stdout !== stdout)) {
        failures.push(
          `${step} ${JSON.stringify(key)}: exit ${result.code}, stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr)}`,
        )
      }
    })
  const listed = async () => new Set((await runCli(['ls', '--json', ...url])).stdout.split('\n'))
  const value = (i: number) => `value ${i}`
  const named = (key: string) => keyArgs(key, json.has(key))
  await each(
    'set',
    (key) => ['set', ...url, ...named(key), '-'],
    () => ({ code: 0 }),
    value,
  )
  await each(
    'get',
    (key) => ['get', ...url, ...named(key)],
    (i) => ({ code: 0, stdout: value(i) }),
  )
  const before = await listed()
  for (const key of keys) {
    if (!before.has(JSON.stringify(key))) failures.push(`ls --json left out ${JSON.stringify(key)}`)
  }
  await each(
    'del',
    (key) => ['del', ...url, ...named(key)],
    () => ({ code: 0 }),
  )
  const after = await listed()
  for (const key of keys) {
    if (after.has(JSON.stringify(key)))
      failures.push(`ls --json still lists ${JSON.stringify(key)}`)
  }
  return failures
}

describe('terminal client keys', () => {
  let server: RunningServer
  let url: string[]
  const keySizeMax = 1024 // The server's default --max-key-size.

  beforeAll(async () => {
    server = await startServer()
    url = ['--url', server.url]
  })

  afterAll(async () => {
    await server?.stop()
  })

  it("sets, gets, lists and deletes '.', '..' and every other awkward key", async () => {
    const keys = awkwardKeys(keySizeMax)
    expect(await roundTrips(url, keys)).toEqual([])
  })

  it('sets, gets, lists and deletes keys generated from all of Unicode (seeded)', async () => {
    const seed = testSeed('cli keys')
    const awkward = ['.', '..', '/', '%', '?', '#', ' ', '\ufeff', '\u0000', '\u0001', '\n', '-']
    const keyArb = fc
      .tuple(
        fc.array(
          fc.oneof(
            fc.constantFrom(...awkward),
            fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }),
          ),
          { minLength: 1, maxLength: 6 },
        ),
        fc.boolean(),
        fc.boolean(),
      )
      .map(([parts, padded, json]) => {
        let key = parts.join('')
        // Some at the size limit, in whatever characters fit it exactly.
        if (padded) key += '.'.repeat(Math.max(0, keySizeMax - Buffer.byteLength(key)))
        return { key, json }
      })
      .filter(({ key }) => key.isWellFormed() && Buffer.byteLength(key) <= keySizeMax)
    const samples = [
      { key: '.', json: false },
      { key: '..', json: true },
      ...fc.sample(keyArb, { seed, numRuns: 24 }),
    ]
    const keys = [...new Set(samples.map((sample) => sample.key))]
    const json = new Set(samples.filter((sample) => sample.json).map((sample) => sample.key))
    expect(await roundTrips(url, keys, json), `seed ${seed}`).toEqual([])
  })

  it('lists keys one per line, and with --json one JSON string per line', async () => {
    const prefix = `${uniqueKey('cli-ls-json')}/`
    const keys = [`${prefix}plain`, `${prefix}line\nbreak`, `${prefix}nul\u0000`, `${prefix}"q"`]
    for (const key of keys) {
      const set = await runCli(['set', '--json', ...url, '--', JSON.stringify(key), 'v'])
      expect(set.code, set.stderr).toBe(0)
    }
    const json = await runCli(['ls', '--json', ...url, '--', JSON.stringify(prefix)])
    expect(json.code, json.stderr).toBe(0)
    expect(json.stdout.split('\n').slice(0, -1).sort()).toEqual(
      keys.map((key) => JSON.stringify(key)).sort(),
    )
    const plain = await runCli(['ls', ...url, prefix])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout).toContain(`${prefix}plain\n`)
    expect(plain.stdout).toContain(`${prefix}"q"\n`)
  })
})
