import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// The document /openapi.json serves, as tools read it: linted by Redocly with its recommended
// rules, warnings failing too (redocly.yaml); every operation named by a stable operationId; and
// the answers that come from before any route declared on every operation. The documents come
// from real servers, with and without --token (only a server has the change feed behind
// GET /v1/watch). test/e2e/openapi-client.test.ts checks the document against what a server does.

const root = fileURLToPath(new URL('../../', import.meta.url))
const redoclyCli = join(
  dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')),
  'bin/cli.js',
)
const lintTimeoutMs = 30_000

/** Renaming one breaks every generated client that calls it: docs/api.md promises they stay. */
const operationIds = [
  'deleteKey',
  'getCluster',
  'getKey',
  'getMetrics',
  'getStats',
  'headKey',
  'healthz',
  'listKeys',
  'putKey',
  'pykvDelete',
  'pykvGet',
  'pykvSet',
  'readyz',
  'resetMissRatioCurve',
  'runBatch',
  'watchChanges',
]

interface Operation {
  operationId?: string
  security?: unknown[]
  requestBody?: unknown
  responses: Record<string, { $ref?: string }>
}
interface Document {
  security?: unknown[]
  paths: Record<string, Record<string, Operation>>
}

const token = 'sekret'
let open: RunningServer
let guarded: RunningServer
let openDocument: Document
let tokenDocument: Document

async function documentOf(server: RunningServer): Promise<Document> {
  return (await (await fetch(`${server.url}/openapi.json`)).json()) as Document
}

beforeAll(async () => {
  ;[open, guarded] = await Promise.all([startServer(), startServer(['--token', token])])
  openDocument = await documentOf(open)
  tokenDocument = await documentOf(guarded)
})

function operations(document: Document): [string, string, Operation][] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]): [string, string, Operation] => [
      `${method.toUpperCase()} ${path}`,
      method,
      operation,
    ]),
  )
}

const dir = mkdtempSync(join(tmpdir(), 'slabkv-openapi-'))
afterAll(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

/** Runs `redocly lint` on the files; resolves with its exit code and output. */
function lint(files: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    [redoclyCli, 'lint', '--config', join(root, 'redocly.yaml'), ...files],
    {
      cwd: root,
      // No telemetry, and no check for a newer version: nothing leaves the machine.
      env: {
        ...process.env,
        REDOCLY_TELEMETRY: 'off',
        REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
        REDOCLY_SUPPRESS_NOTIFICATIONS: 'true',
      },
    },
  )
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), lintTimeoutMs)
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

describe('the OpenAPI document', () => {
  it(
    'passes redocly lint with the recommended rules, with and without a token',
    async () => {
      const files = []
      for (const [name, document] of Object.entries({ open: openDocument, token: tokenDocument })) {
        const file = join(dir, `${name}.json`)
        writeFileSync(file, JSON.stringify(document))
        files.push(file)
      }
      const { code, output } = await lint(files)
      expect(code, output).toBe(0)
    },
    lintTimeoutMs + 5_000,
  )

  it('names every operation with its stable operationId', async () => {
    const ids = operations(openDocument).map(([, , operation]) => operation.operationId)
    expect(ids.sort()).toEqual(operationIds)
  })

  it('declares the answers that come before any route on every operation', async () => {
    for (const document of [openDocument, tokenDocument]) {
      for (const [name, method, operation] of operations(document)) {
        const statuses = Object.keys(operation.responses)
        expect(statuses, name).toEqual(expect.arrayContaining(['408', '421', '429', '431']))
        // Every 4xx has a body schema (HEAD answers have no body, so none is declared).
        if (method !== 'head') {
          for (const status of statuses.filter((status) => status.startsWith('4'))) {
            const response = operation.responses[status] as { $ref?: string; content?: unknown }
            expect(response.$ref ?? response.content, `${name} ${status}`).toBeDefined()
          }
        }
        if (operation.requestBody !== undefined) expect(statuses, name).toContain('413')
        const probe = name === 'GET /healthz' || name === 'GET /readyz'
        if (document === tokenDocument && !probe) expect(statuses, name).toContain('401')
        else expect(statuses, name).not.toContain('401')
      }
    }
  })

  it('says that no operation needs credentials without a token, and which do with one', async () => {
    expect(openDocument.security).toEqual([])
    expect(tokenDocument.security).toEqual([{ bearer: [] }])
    expect(tokenDocument.paths['/healthz']?.get?.security).toEqual([])
  })
})
