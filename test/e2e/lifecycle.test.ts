import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { lockFileName } from '../../src/wal/dir-lock.js'
import {
  cleanEnv,
  cliPath,
  freePort,
  keyPath,
  killAll,
  type RunningServer,
  runCli,
  sleep,
  startServer,
  uniqueKey,
} from '../support/server.js'

// docs/configuration.md: signals, exit codes, --help, option validation and SLABKV_*
// environment variables. The terminal client is in client.test.ts.

afterAll(async () => {
  await killAll()
})

/** Resolves 'refused' when a new TCP connection to the port is refused, 'accepted' otherwise. */
function tryConnect(port: number): Promise<'accepted' | 'refused'> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('accepted')
    })
    socket.once('error', () => resolve('refused'))
  })
}

/**
 * Starts `count` PUTs that send `chunkCount` chunks 60 ms apart. Each asks `Expect: 100-continue`,
 * so `accepted` resolves once the server has accepted every connection and read every request's
 * headers (Node answers 100 Continue then), which a fixed wait cannot promise: a connection
 * still in the listen backlog is reset when the listener closes. Each request then sends its
 * first chunk and waits for release(), so no body ends before the test lets it.
 */
function slowPuts(port: number, count: number, chunkCount: number) {
  // Kept-alive connections, as fetch and browsers keep them: a drain must not wait for them.
  const agent = new Agent({ keepAlive: true, maxSockets: count })
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const continues: Promise<void>[] = []
  const answers = Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<{ status: number; body: string }>((resolve) => {
          const request = httpRequest({
            host: '127.0.0.1',
            port,
            method: 'PUT',
            path: `/v1/kv/${keyPath(uniqueKey('drain'))}`,
            headers: { expect: '100-continue', 'transfer-encoding': 'chunked' },
            agent,
          })
          continues.push(
            new Promise<void>((continued, failed) => {
              request.once('continue', () => continued())
              request.once('response', () => failed(new Error('answered before 100 Continue')))
              request.once('error', failed)
            }),
          )
          const chunk = new Uint8Array(16 * 1024).fill(97 + (i % 26))
          request.on('continue', async () => {
            request.write(chunk)
            await released
            for (let n = 1; n < chunkCount; n++) {
              await sleep(60)
              request.write(chunk)
            }
            request.end()
          })
          request.on('response', (response) => {
            let body = ''
            response.setEncoding('utf8')
            response.on('data', (text: string) => {
              body += text
            })
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
            response.on('error', (error) => resolve({ status: 0, body: String(error) }))
          })
          request.on('error', (error) => resolve({ status: 0, body: String(error) }))
        }),
    ),
  )
  const accepted = Promise.race([
    Promise.all(continues).then(() => undefined),
    sleep(10_000).then(() => {
      throw new Error('not every request got its 100 Continue within 10 s')
    }),
  ])
  // A failed start must not leave the accepted requests waiting forever.
  accepted.catch(release)
  return { answers, accepted, release, closeConnections: () => agent.destroy() }
}

/** Resolves once a new connection to the port is refused: the listener is closed. */
async function refusedSoon(port: number): Promise<'accepted' | 'refused'> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const outcome = await tryConnect(port)
    if (outcome === 'refused' || Date.now() > deadline) return outcome
    await sleep(20)
  }
}

describe('stopping', () => {
  let server: RunningServer | undefined

  afterEach(async () => {
    await server?.stop('SIGKILL')
    server = undefined
  })

  it('lets accepted requests finish on SIGTERM, refuses new connections and exits 0', async () => {
    server = await startServer()
    const { port } = server
    const requestCount = 20
    const requests = slowPuts(port, requestCount, 20)
    await requests.accepted
    server.process.kill('SIGTERM')
    expect(await refusedSoon(port), 'a new connection after SIGTERM').toBe('refused')
    requests.release()
    const answers = await requests.answers
    const failed = answers.filter((answer) => !/^\{"version":\d+\}$/.test(answer.body))
    expect(
      failed.map((answer) => `${answer.status} ${answer.body}`),
      `${failed.length} of ${requestCount} in-flight PUTs failed\n${server.stdout()}`,
    ).toEqual([])
    for (const answer of answers) expect(answer.status).toBe(201)
    // Not stop(): a second SIGTERM could cut the drain short.
    const timer = setTimeout(() => server?.process.kill('SIGKILL'), 15_000)
    const code = await server.exited
    clearTimeout(timer)
    requests.closeConnections()
    expect(code, server.stdout()).toBe(0)
    expect(await tryConnect(port)).toBe('refused')
  })

  it('exits as soon as the in-flight requests are done, without waiting for their connections to go idle', async () => {
    server = await startServer([
      '--keep-alive-timeout-ms',
      '60000',
      '--shutdown-timeout-ms',
      '60000',
    ])
    const requests = slowPuts(server.port, 3, 10)
    await requests.accepted
    server.process.kill('SIGTERM')
    requests.release()
    const answers = await requests.answers
    expect(answers.map((answer) => answer.status)).toEqual([201, 201, 201])
    const answeredAt = Date.now()
    const timer = setTimeout(() => server?.process.kill('SIGKILL'), 5_000)
    const code = await server.exited
    clearTimeout(timer)
    requests.closeConnections()
    expect(code, `exit code, ${Date.now() - answeredAt} ms after the last answer`).toBe(0)
    expect(Date.now() - answeredAt).toBeLessThan(3000)
  })

  it('exits 0 on SIGINT', async () => {
    server = await startServer()
    const response = await fetch(`${server.url}/healthz`)
    expect(response.status).toBe(200)
    await response.arrayBuffer()
    expect(await server.stop('SIGINT')).toBe(0)
  })

  it('exits 0 on a SIGTERM that comes while it starts, once it serves', async () => {
    // Sent when recovery is done and the threads are starting. A handler installed only once
    // the start had returned left that whole time (and the moment after 'listening' is logged)
    // to a SIGTERM that killed the process outright.
    const cwd = mkdtempSync(join(tmpdir(), 'slabkv-sigterm-'))
    const child = spawn(process.execPath, [cliPath, 'serve', '--port', String(await freePort())], {
      cwd,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    child.stdout.setEncoding('utf8')
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    )
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk
        if (stdout.includes('"msg":"recovered"')) resolve()
      })
    })
    child.kill('SIGTERM')
    const code = await Promise.race([exited, sleep(15_000).then(() => 'still running')])
    if (code === 'still running') child.kill('SIGKILL')
    expect(code, stdout).toBe(0)
    const messages = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).msg)
    expect(messages).toContain('stopping')
    expect(messages.at(-1)).toBe('stopped')
    rmSync(cwd, { recursive: true, force: true })
  })

  it('does not wait for idle kept-alive connections on SIGTERM', async () => {
    server = await startServer([
      '--keep-alive-timeout-ms',
      '60000',
      '--shutdown-timeout-ms',
      '60000',
    ])
    // fetch keeps this connection open and idle in its pool.
    const response = await fetch(`${server.url}/healthz`)
    await response.arrayBuffer()
    const stoppedFrom = Date.now()
    expect(await server.stop()).toBe(0)
    expect(Date.now() - stoppedFrom).toBeLessThan(3000)
  })
})

describe('starting', () => {
  it('refuses a port another server listens on, and leaves that server serving', async () => {
    // Handler threads bind with reusePort, which the kernel would let a second server share.
    const first = await startServer(['--threads', '2'])
    // The port is checked before the disk is touched: the second start leaves nothing behind.
    const parent = mkdtempSync(join(tmpdir(), 'slabkv-port-'))
    const dataDir = join(parent, 'data')
    const second = await runCli([
      'serve',
      '--port',
      String(first.port),
      '--threads',
      '2',
      '--data-dir',
      dataDir,
    ])
    expect(second.code, second.stdout).toBe(1)
    const failure = second.logs.find((line) => line.msg === 'could not start')
    expect(failure?.error, second.stdout).toMatch(/EADDRINUSE/)
    expect(existsSync(dataDir), 'the data directory of a start that failed').toBe(false)
    rmSync(parent, { recursive: true })
    const response = await fetch(`${first.url}/healthz`)
    expect(response.status).toBe(200)
    await response.arrayBuffer()
    expect(await first.stop()).toBe(0)
  })

  it('refuses a data directory another server holds before touching it, as wal repair does', async () => {
    // Outside the server's working directory, which stop() removes: the lock is checked after.
    const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-lock-'))
    const first = await startServer(['--data-dir', dataDir])
    const filesBefore = readdirSync(dataDir).sort()
    const holder = new RegExp(`in use by process ${first.process.pid}\\b`)
    const second = await runCli([
      'serve',
      '--data-dir',
      dataDir,
      '--port',
      String(await freePort()),
    ])
    expect(second.code, second.stdout).toBe(1)
    const failure = second.logs.find((line) => line.msg === 'could not start')
    expect(failure?.error, second.stdout).toMatch(holder)
    expect(second.logs.some((line) => line.msg === 'recovered')).toBe(false)
    const repair = await runCli(['wal', 'repair', dataDir])
    expect(repair.code, repair.stdout).toBe(1)
    expect(repair.stderr).toMatch(holder)
    expect(readdirSync(dataDir).sort()).toEqual(filesBefore)
    const response = await fetch(`${first.url}/healthz`)
    expect(response.status).toBe(200)
    await response.arrayBuffer()
    // A clean stop gives the directory up.
    expect(await first.stop()).toBe(0)
    expect(readdirSync(dataDir)).not.toContain(lockFileName)
    rmSync(dataDir, { recursive: true })
  })
})

describe('a start after an unclean stop', () => {
  const uncleanStop = 'the previous server did not stop cleanly: took over its data directory lock'

  it('says the previous server did not stop cleanly, naming it, and what recovery did; a clean stop says nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'slabkv-unclean-'))
    try {
      const first = await startServer(['--data-dir', dataDir])
      const written = await fetch(`${first.url}/v1/kv/k`, { method: 'PUT', body: 'v' })
      expect(written.status).toBe(201)
      const killedPid = first.process.pid
      expect(await first.stop('SIGKILL')).toBe(null)

      const second = await startServer(['--data-dir', dataDir])
      const notice = second.logs.find((line) => line.msg === uncleanStop)
      expect(notice, second.stdout()).toMatchObject({
        level: 'warn',
        previousPid: killedPid,
        lockTakenOverBecause: 'its process no longer runs',
        recordsReplayed: 1,
      })
      expect(await second.stop()).toBe(0)

      const third = await startServer(['--data-dir', dataDir])
      expect(third.logs.filter((line) => line.msg === uncleanStop)).toEqual([])
      expect(await third.stop()).toBe(0)
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

const optionsWithDefaults: [string, string | undefined][] = [
  ['--host', '127.0.0.1'],
  ['--port', '8000'],
  ['--threads', undefined],
  ['--token', undefined],
  ['--data-dir', './data'],
  ['--miss-ratio-curve', 'off'],
  ['--max-entries', '1000000'],
  ['--max-memory', '256MiB'],
  ['--max-key-size', '1024'],
  ['--max-value-size', '1MiB'],
  ['--max-body-size', '4MiB'],
  ['--max-batch-ops', '1000'],
  ['--max-batch-read-size', '16MiB'],
  ['--max-json-depth', '128'],
  ['--allowed-hosts', undefined],
  ['--headers-timeout-ms', '10000'],
  ['--request-timeout-ms', '30000'],
  ['--keep-alive-timeout-ms', '5000'],
  ['--connection-check-interval-ms', '1000'],
  ['--send-timeout-ms', '30000'],
  ['--max-pipelined-requests', '512'],
  ['--shutdown-timeout-ms', '10000'],
]

/** Drops the separators a help text may put in numbers and sizes: 1,000,000 or 256 MiB. */
function normalize(text: string): string {
  return text.replace(/[\s,_]/g, '')
}

describe('configuration', () => {
  it('lists every option with its default in serve --help, exiting 0', async () => {
    const result = await runCli(['serve', '--help'])
    expect(result.code, result.stderr).toBe(0)
    const lines = result.stdout.split('\n')
    const problems: string[] = []
    for (const [option, defaultValue] of optionsWithDefaults) {
      const at = lines.findIndex((line) => new RegExp(`${option}(?![\\w-])`).test(line))
      if (at < 0) {
        problems.push(`${option} is missing`)
        continue
      }
      if (defaultValue === undefined) continue
      // The option's own line and its continuation lines, up to the next option.
      let text = lines[at]!
      for (let i = at + 1; i < lines.length && !/^\s*--/.test(lines[i]!); i++) text += lines[i]
      if (!normalize(text).includes(normalize(defaultValue))) {
        problems.push(`${option} does not show its default ${defaultValue}: ${lines[at]}`)
      }
    }
    expect(problems, result.stdout).toEqual([])
  })

  it('exits 2 with a message naming the option for an invalid value', async () => {
    const cases: [string[], string][] = [
      [['--max-entries', '-1'], 'max-entries'],
      [['--max-entries', '0'], 'max-entries'],
      [['--max-entries', 'many'], 'max-entries'],
      [['--port', 'abc'], 'port'],
      [['--port', '70000'], 'port'],
      [['--max-memory', '12XB'], 'max-memory'],
      [['--max-value-size', '1.5MiB?'], 'max-value-size'],
      [['--max-key-size', '70000'], 'max-key-size'],
      [['--shutdown-timeout-ms', '-5'], 'shutdown-timeout-ms'],
      [['--no-such-option'], 'no-such-option'],
    ]
    const results = await Promise.all(
      cases.map(([flags]) => runCli(['serve', '--port', '0', ...flags], { timeoutMs: 5000 })),
    )
    const problems: string[] = []
    cases.forEach(([flags, name], i) => {
      const result = results[i]!
      const output = `${result.stdout}${result.stderr}`
      if (result.code !== 2 || !output.includes(name)) {
        problems.push(`${flags.join(' ')} → exit ${result.code}: ${output.trim().slice(0, 300)}`)
      }
    })
    expect(problems).toEqual([])
  })

  it('refuses a header timeout longer than the request timeout as configuration (exit 2)', async () => {
    const result = await runCli(['serve', '--port', '0', '--headers-timeout-ms', '60000'])
    expect(result.code).toBe(2)
    expect(result.stdout + result.stderr).toMatch(/headers-timeout-ms/)
  })

  it('exits 2 for an invalid SLABKV_* environment variable', async () => {
    const result = await runCli(['serve', '--port', '0'], {
      env: { SLABKV_MAX_ENTRIES: 'lots' },
      timeoutMs: 5000,
    })
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(2)
    expect(`${result.stdout}${result.stderr}`).toMatch(/MAX_ENTRIES|max-entries/i)
  })

  it('reads options from SLABKV_* variables, a flag winning over its variable, sizes with suffixes', async () => {
    const server = await startServer(['--max-key-size', '16'], {
      SLABKV_MAX_KEY_SIZE: '8',
      SLABKV_MAX_VALUE_SIZE: '1KiB',
    })
    try {
      const putStatus = async (key: string, size: number) => {
        // A Uint8Array body goes without a Content-Type.
        const response = await fetch(`${server.url}/v1/kv/${key}`, {
          method: 'PUT',
          body: new Uint8Array(size),
        })
        await response.arrayBuffer()
        return response.status
      }
      expect(await putStatus('twelve-bytes', 1)).toBe(201)
      expect(await putStatus('seventeen-bytes-k', 1)).toBe(400)
      expect(await putStatus('kib-fits', 1024)).toBe(201)
      expect(await putStatus('kib-over', 1025)).toBe(413)
    } finally {
      await server.stop()
    }
  })
})

/** Opens a raw TCP connection, writes `text`, and resolves with what came back and when it closed. */
function rawExchange(
  port: number,
  text: string,
  waitMs: number,
): Promise<{ received: string; closedAfterMs: number | null }> {
  return new Promise((resolve) => {
    const openedAt = Date.now()
    let received = ''
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      received += chunk
    })
    socket.on('error', () => {
      // A reset counts as a close.
    })
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ received, closedAfterMs: null })
    }, waitMs)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ received, closedAfterMs: Date.now() - openedAt })
    })
  })
}

describe('connection timeouts', () => {
  let server: RunningServer

  afterAll(async () => {
    await server?.stop()
  })

  it('closes connections that exceed --headers-timeout-ms, --request-timeout-ms or --keep-alive-timeout-ms', async () => {
    server = await startServer([
      '--headers-timeout-ms',
      '500',
      '--request-timeout-ms',
      '1000',
      '--keep-alive-timeout-ms',
      '300',
      '--connection-check-interval-ms',
      '100',
    ])
    // The upper bounds only tell each flag from its default (10 s, 30 s, 5 s), with room for a
    // machine that stalls for seconds.
    const [headers, body, idle] = await Promise.all([
      // Headers that never end.
      rawExchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', 9000),
      // A body that never arrives.
      rawExchange(
        server.port,
        'PUT /v1/kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc',
        9000,
      ),
      // A complete request, then silence on a kept-alive connection.
      rawExchange(server.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 9000),
    ])
    expect(headers.closedAfterMs, headers.received).not.toBeNull()
    // The 408 says why, and which flags set the time.
    expect(headers.received).toMatch(
      /^HTTP\/1\.1 408 .*application\/problem\+json.*--headers-timeout-ms/s,
    )
    expect(headers.closedAfterMs!).toBeGreaterThanOrEqual(400)
    expect(headers.closedAfterMs!).toBeLessThan(8000)
    expect(body.closedAfterMs, body.received).not.toBeNull()
    expect(body.closedAfterMs!).toBeGreaterThanOrEqual(900)
    expect(body.closedAfterMs!).toBeLessThan(8000)
    expect(idle.received).toMatch(/^HTTP\/1\.1 200/)
    expect(idle.closedAfterMs, idle.received).not.toBeNull()
    expect(idle.closedAfterMs!).toBeGreaterThanOrEqual(250)
    expect(idle.closedAfterMs!).toBeLessThan(4500)
    const stored = await fetch(`${server.url}/v1/kv/slow`)
    expect(stored.status, 'the cut-off PUT stored nothing').toBe(404)
    await stored.arrayBuffer()
  })
})
