import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Slabkv, WatchHistoryGoneError } from '../../src/client/index.js'
import { supportsReusePort } from '../../src/http/listen.js'
import { killAll, runCli, startServer } from '../support/server.js'

// The runtime floor. npm test runs the whole suite on the project's own Node 24, then this file
// again on the oldest Node that package.json's engines admits (npm run test:floor), so the floor
// is a version slabkv was seen to serve on, not a guess.

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
const floor = '22.12.0'

afterAll(killAll)

describe('the engines floor', () => {
  it('is the oldest Node with reusePort, and the one npm test tries', () => {
    expect(packageJson.engines.node).toBe(`>=${floor.replace(/\.0$/, '')}`)
    expect(packageJson.scripts['test:floor']).toContain(`node@${floor} `)
    expect(supportsReusePort(floor)).toBe(true)
    expect(supportsReusePort('22.11.0')).toBe(false)
    expect(supportsReusePort('20.20.2')).toBe(false)
    expect(supportsReusePort('24.0.0')).toBe(true)
  })

  it(`serves from handler threads on this Node (${process.version}): start, a write, a read, SIGTERM`, async () => {
    const server = await startServer(['--threads', '2'])
    expect(server.listening).toMatchObject({ threads: 2, node: process.version })
    const put = await fetch(`${server.url}/v1/kv/floor`, { method: 'PUT', body: 'ok' })
    expect(put.status).toBe(201)
    const get = await fetch(`${server.url}/v1/kv/floor`)
    expect(get.status).toBe(200)
    expect(await get.text()).toBe('ok')
    expect(await server.stop('SIGTERM')).toBe(0)
    expect(server.stderr()).toBe('')
  })

  it(`runs the Node client (src/client) on this Node (${process.version})`, async () => {
    const server = await startServer()
    const kv = new Slabkv({ url: server.url })
    const { sequence } = await kv.stats()
    const changes = kv.watch({ since: sequence, signal: AbortSignal.timeout(30_000) })
    const { version } = await kv.set('floor/.', 'ok', { ttlSeconds: 60 })
    expect(await kv.getText('floor/.')).toBe('ok')
    expect((await changes.next()).value).toMatchObject({ type: 'set', key: 'floor/.', version })
    await changes.return(undefined as never)
    const [read] = await kv.batch([{ op: 'get', key: 'floor/.' }])
    expect(read?.value.toString()).toBe('ok')
    const keys: string[] = []
    for await (const entry of kv.list({ prefix: 'floor/' })) keys.push(entry.key)
    expect(keys).toEqual(['floor/.'])
    expect(await kv.delete('floor/.')).toBe(true)
    await expect(kv.watch({ since: 1_000_000 }).next()).rejects.toThrow(WatchHistoryGoneError)
    expect(await server.stop('SIGTERM')).toBe(0)
  })
})

// A Node older than the floor is refused at start with a message that says what to run instead,
// before the port or the data directory is touched. Debian's system Node (20 on this machine)
// is such a Node; where the system has none, or a newer one, there is nothing to try.
const systemNode = '/usr/bin/node'
const systemNodeVersion = existsSync(systemNode)
  ? spawnSync(systemNode, ['--version'], { encoding: 'utf8' }).stdout.trim()
  : ''
const systemNodeTooOld = systemNodeVersion !== '' && !supportsReusePort(systemNodeVersion.slice(1))

describe.runIf(systemNodeTooOld)(`a Node below the floor (${systemNodeVersion})`, () => {
  it('refuses to serve, saying which Node it needs and that npm start brings one', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'slabkv-floor-')), 'data')
    const result = await runCli(['serve', '--port', '0', '--data-dir', dataDir], {
      node: systemNode,
    })
    expect(result.code, result.stdout + result.stderr).toBe(1)
    const failure = result.logs.find((line) => line.msg === 'could not start')
    expect(String(failure?.error)).toMatch(/needs Node >= 22\.12.*npm start/)
    expect(existsSync(dataDir), 'the data directory of a start that failed').toBe(false)
    rmSync(dirname(dataDir), { recursive: true })
  })
})
