import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// The OpenAPI document against what the server does, through the tools people generate clients
// with: openapi-typescript turns a running server's /openapi.json into types, tsc checks
// openapi-client/drive.ts against them (one tsc process, on two small files), and the same file
// then drives every operation of that server through openapi-fetch. A path, parameter, body or
// answer the document gets wrong fails to compile, or fails at run time.

const driverDir = fileURLToPath(new URL('./openapi-client/', import.meta.url))
const require = createRequire(import.meta.url)
const tscPath = join(dirname(require.resolve('typescript/package.json')), 'bin/tsc')
const typesDir = join(dirname(require.resolve('@types/node/package.json')), '..')
const tscTimeoutMs = 30_000

/**
 * The driver, imported at run time by a path the project's tsc does not follow: drive.ts is
 * type-checked only here, against types generated from a server (the project has none).
 */
const driverPath = new URL('./openapi-client/drive.ts', import.meta.url).href
type Driver = { driveEveryRoute: (baseUrl: string) => Promise<string[]> }

interface Document {
  paths: Record<string, Record<string, { operationId: string }>>
}

let server: RunningServer
const dir = mkdtempSync(join(tmpdir(), 'slabkv-openapi-client-'))

beforeAll(async () => {
  server = await startServer()
})

afterAll(async () => {
  await killAll()
  rmSync(dir, { recursive: true, force: true })
})

/** Runs tsc on the project file; resolves with its exit code and output. */
function typecheck(project: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [tscPath, '-p', project], { cwd: dir })
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), tscTimeoutMs)
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

describe('a client generated from /openapi.json', () => {
  it(
    'type-checks against the generated types',
    async () => {
      const ast = await openapiTS(new URL(`${server.url}/openapi.json`))
      writeFileSync(join(dir, 'paths.ts'), astToString(ast))
      // The project's compiler options, with the driver and the generated types seen as one
      // directory (rootDirs), so that drive.ts's `./paths.js` is the file generated here.
      const project = join(dir, 'tsconfig.json')
      const tsconfig = {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          types: ['node'],
          typeRoots: [typesDir],
          strict: true,
          noUncheckedIndexedAccess: true,
          verbatimModuleSyntax: true,
          skipLibCheck: true,
          noEmit: true,
          rootDirs: [driverDir, dir],
        },
        files: [join(driverDir, 'drive.ts'), join(dir, 'paths.ts')],
      }
      writeFileSync(project, JSON.stringify(tsconfig))
      const { code, output } = await typecheck(project)
      expect(output).toBe('')
      expect(code).toBe(0)
    },
    tscTimeoutMs + 10_000,
  )

  it('drives every operation of a real server', async () => {
    const { driveEveryRoute } = (await import(driverPath)) as Driver
    const sent = await driveEveryRoute(server.url)
    const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as Document
    for (const [path, operations] of Object.entries(document.paths)) {
      const pattern = new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`)
      for (const [method, { operationId }] of Object.entries(operations)) {
        const called = sent.some((request) => {
          const [sentMethod, sentPath] = request.split(' ')
          return sentMethod === method.toUpperCase() && pattern.test(sentPath!)
        })
        expect(called, `${operationId}: ${method.toUpperCase()} ${path}`).toBe(true)
      }
    }
  })
})
