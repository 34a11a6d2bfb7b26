import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { keyPath, killAll, type RunningServer, sleep, startServer } from '../support/server.js'
import { expectProblem } from './http.js'

// A real full disk: the data directory is a 1 MiB tmpfs, filled by a file the test controls.
// When the log's write fails with ENOSPC, the server turns read-only (new writes get 507, reads
// keep working, the write that hit the wall stays pending), and once the test frees space the
// writer's retry goes through, the pending write is acknowledged and writes are accepted again.
// Mounting needs root (CAP_SYS_ADMIN); without it the test says so and skips.

const mountPoint = mkdtempSync(join(tmpdir(), 'slabkv-full-'))
const mountError = tryMount()
const fillerPath = join(mountPoint, 'filler')
const valueSize = 8 * 1024

function tryMount(): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { stdio: 'pipe' })
    return undefined
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error).trim()
  }
}

afterAll(async () => {
  await killAll()
  if (mountError === undefined) execFileSync('umount', [mountPoint])
  rmSync(mountPoint, { recursive: true, force: true })
})

if (mountError !== undefined) {
  console.log(`disk-full test skipped: mounting a 1 MiB tmpfs failed (needs root): ${mountError}`)
}

function value(index: number): Uint8Array {
  return new Uint8Array(valueSize).fill(index % 251)
}

/**
 * Resolves once the server reports its log read-only (a write hit the full disk), asking until
 * `answer` settles: a write's answer or this, whichever comes first, says whether it is stuck.
 */
async function readOnlyBefore(server: RunningServer, answer: Promise<unknown>): Promise<undefined> {
  let answered = false
  const done = () => {
    answered = true
  }
  answer.then(done, done)
  const deadline = Date.now() + 10_000
  while (!answered) {
    if (Date.now() > deadline)
      throw new Error('a write neither answered nor left the log read-only')
    const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as {
      wal: { state: string }
    }
    if (/read-only/.test(stats.wal.state)) return undefined
    await sleep(20)
  }
  return new Promise(() => {})
}

describe.skipIf(mountError !== undefined)('a full disk', () => {
  it('turns the server read-only with 507, keeps reads working, and resumes when space returns', async () => {
    const dataDir = join(mountPoint, 'data')
    const flags = ['--data-dir', dataDir, '--max-memory', '4MiB', '--max-entries', '10000']
    const server = await startServer([...flags, '--snapshot-after-size', '1GiB'])
    const put = (index: number) =>
      fetch(`${server.url}/v1/kv/${keyPath(`k${index}`)}`, { method: 'PUT', body: value(index) })

    // Leave room for a few values only.
    const { bavail, bsize } = statfsSync(mountPoint)
    writeFileSync(fillerPath, new Uint8Array(bavail * bsize - 6 * valueSize))

    const acknowledged: number[] = []
    let pending: Promise<Response> | undefined
    let pendingIndex = -1
    for (let index = 0; index < 20 && pending === undefined; index++) {
      const answer = put(index)
      const settled = await Promise.race([answer, readOnlyBefore(server, answer)])
      if (settled === undefined) {
        pending = answer
        pendingIndex = index
      } else {
        expect(settled.status).toBe(201)
        acknowledged.push(index)
      }
    }
    expect(pending, 'no write ever waited on the full disk').toBeDefined()

    await expectProblem(await put(100), 507, 'storage_full')
    await expectProblem(
      await fetch(`${server.url}/v1/kv/k0`, { method: 'DELETE' }),
      507,
      'storage_full',
    )
    // Reads that find nothing, and listings without the stuck key, answer too: they wait only
    // for removals, and the write stuck behind the full disk is a set. (A read of the stuck key
    // itself waits for it: no value is shown before it is durable.)
    // "Promptly" is generous: a hung read never answers, and a slow machine may stall for seconds.
    const promptly = (path: string) =>
      Promise.race([fetch(`${server.url}${path}`), sleep(10_000).then(() => undefined)])
    expect((await promptly('/v1/kv/never-written'))?.status, 'a miss hung').toBe(404)
    expect((await promptly('/get/never-written'))?.status, 'a seed miss hung').toBe(404)
    expect((await promptly('/v1/kv?prefix=never'))?.status, 'a listing hung').toBe(200)
    const read = await fetch(`${server.url}/v1/kv/k0`)
    expect(read.status).toBe(200)
    expect(new Uint8Array(await read.arrayBuffer())).toEqual(value(0))
    const stats = (await (await fetch(`${server.url}/v1/stats`)).json()) as {
      wal: { state: string }
    }
    expect(stats.wal.state).toMatch(/read-only/)

    unlinkSync(fillerPath)
    // The writer retries once a second.
    const resumed = await Promise.race([pending!, sleep(5000).then(() => undefined)])
    expect(resumed?.status, 'the pending write was not acknowledged after space returned').toBe(201)
    acknowledged.push(pendingIndex)
    expect((await put(200)).status).toBe(201)
    acknowledged.push(200)

    expect(await server.stop('SIGTERM')).toBe(0)
    const restarted = await startServer(flags)
    for (const index of acknowledged) {
      const response = await fetch(`${restarted.url}/v1/kv/k${index}`)
      expect(response.status, `k${index}`).toBe(200)
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(value(index))
    }
    expect(await restarted.stop('SIGTERM')).toBe(0)
  })
})
