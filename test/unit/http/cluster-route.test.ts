import { readFileSync } from 'node:fs'
import os from 'node:os'
import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../../../src/config.js'
import { inProcessApp } from '../../support/app.js'

// GET /v1/cluster (docs/api.md, docs/scale-out.md): who this node is and how it is
// configured, so an operator can tell several nodes behind a balancer apart. In process,
// through app.request(); the --node-id option's default comes from src/config.ts.

const packageVersion = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
).version

const startedAtMs = Date.parse('2026-11-25T12:00:00.000Z')

function makeApp(flags: Record<string, string>) {
  const { app } = inProcessApp({
    flags,
    runtime: { threadCount: 3, startedAtMs },
  })
  return app
}

async function cluster(flags: Record<string, string>, headers: Record<string, string> = {}) {
  return makeApp(flags).request('/v1/cluster', { headers })
}

describe('GET /v1/cluster', () => {
  it("reports the node's name, version, start time and configuration", async () => {
    const response = await cluster({
      'node-id': 'cache-eu-1',
      port: '8002',
      fsync: 'everysec',
      'max-body-size': '2MiB',
      'data-dir': '/var/lib/slabkv',
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    const body = (await response.json()) as Record<string, unknown>
    expect(body).toMatchObject({
      nodeId: 'cache-eu-1',
      hostname: os.hostname(),
      pid: process.pid,
      version: packageVersion,
      nodejsVersion: process.version,
      startedAt: '2026-11-25T12:00:00.000Z',
      threads: 3,
      config: {
        host: '127.0.0.1',
        port: 8002,
        auth: false,
        dataDir: '/var/lib/slabkv',
        fsync: 'everysec',
        limits: { entryCountMax: 64, memorySizeMax: 64 * 1024, keySizeMax: 64, valueSizeMax: 1024 },
        bodySizeMax: 2 * 1024 * 1024,
        batchOpCountMax: 1000,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        keepAliveTimeoutMs: 5000,
        segmentSizeMax: 64 * 1024 * 1024,
        snapshotLogSizeMin: 64 * 1024 * 1024,
      },
    })
    expect(body.uptimeSeconds).toBeGreaterThan(0)
  })

  it('names the node <hostname>:<port> when --node-id is not given', async () => {
    const body = (await (await cluster({ port: '8003' })).json()) as { nodeId: string }
    expect(body.nodeId).toBe(`${os.hostname()}:8003`)
  })

  it('takes the name from SLABKV_NODE_ID as from the flag', () => {
    const resolved = resolveConfig({}, { SLABKV_NODE_ID: 'from-env' })
    expect(resolved.ok && resolved.config.nodeId).toBe('from-env')
  })

  it('needs the token like every route but the probes, and never shows it', async () => {
    const flags = { 'node-id': 'n1', token: 'secret-token' }
    expect((await cluster(flags)).status).toBe(401)
    const response = await cluster(flags, { Authorization: 'Bearer secret-token' })
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).not.toContain('secret-token')
    expect(JSON.parse(text)).toMatchObject({ config: { auth: true } })
  })

  it('is documented in the OpenAPI document', async () => {
    const response = await makeApp({}).request('/openapi.json')
    const document = (await response.json()) as {
      paths: Record<string, { get?: { responses?: Record<string, unknown> } }>
    }
    expect(document.paths['/v1/cluster']?.get?.responses).toHaveProperty('200')
  })
})
