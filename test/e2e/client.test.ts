import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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

// README "Terminal client": get, set, del and ls against a running server, and their exit
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

  it('exits 2 for a usage error', async () => {
    const commands = [['get'], ['set', 'k'], ['del'], ['frobnicate', 'k'], ['get', 'a', 'b']]
    const results = await Promise.all(commands.map((args) => runCli([...args, ...url])))
    expect(results.map((result, i) => `${commands[i]!.join(' ')} → ${result.code}`)).toEqual(
      commands.map((args) => `${args.join(' ')} → 2`),
    )
  })
})
