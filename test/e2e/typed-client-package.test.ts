import { spawn } from 'node:child_process'
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertBuilt } from '../support/dist.js'
import { killAll, type RunningServer, startServer } from '../support/server.js'

// `import { Slabkv } from 'slabkv/client'` as a user's program does it: a project outside the
// repository with slabkv in its node_modules (a symlink to the repository, as `npm install
// <path>` or `npm link` makes), client-package/consumer.ts copied into it, type-checked by tsc
// with NodeNext, Node16 and Bundler resolution (the package's "exports" and its .d.ts; each
// expected error in it is a misuse the types must refuse), compiled, and run with node against
// a real server. The examples of docs/client.md run the same way, as one module, printing what
// their `// → ` lines say.

const root = fileURLToPath(new URL('../../', import.meta.url))
const require = createRequire(import.meta.url)
const tscPath = join(dirname(require.resolve('typescript/package.json')), 'bin/tsc')
const typesDir = join(dirname(require.resolve('@types/node/package.json')), '..')
const tscTimeoutMs = 60_000
const project = mkdtempSync(join(tmpdir(), 'slabkv-client-package-'))
let server: RunningServer

beforeAll(async () => {
  assertBuilt(['src/client/index.ts', 'src/client/types.ts', 'src/client/watch.ts'])
  server = await startServer()
  mkdirSync(join(project, 'node_modules'))
  symlinkSync(root, join(project, 'node_modules', 'slabkv'), 'dir')
  writeFileSync(join(project, 'package.json'), '{"type":"module","private":true}\n')
  copyFileSync(
    fileURLToPath(new URL('./client-package/consumer.ts', import.meta.url)),
    join(project, 'consumer.ts'),
  )
})

afterAll(async () => {
  await killAll()
  rmSync(project, { recursive: true, force: true })
})

/** Runs a program to completion in the project; its exit code and output. */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { cwd: project })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => {
    stdout += chunk
  })
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), tscTimeoutMs)
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** tsc on consumer.ts with these module options; the type errors it prints, if any. */
async function typecheck(name: string, options: Record<string, unknown>): Promise<string> {
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      types: ['node'],
      typeRoots: [typesDir],
      strict: true,
      // The package's declarations are checked too, not taken on trust.
      skipLibCheck: false,
      ...options,
    },
    files: ['consumer.ts'],
  }
  writeFileSync(join(project, name), JSON.stringify(tsconfig))
  const { code, stdout, stderr } = await run([tscPath, '-p', name])
  return code === 0 ? '' : `exit ${code}\n${stdout}${stderr}`
}

/**
 * The js blocks of a page as one module: the first at the top level (it holds the imports), each
 * later one in a block of its own; and the lines `// → text`, what it must print, in order.
 */
function examplesOf(page: string): { module: string; expected: string[] } {
  const blocks = [...readFileSync(join(root, page), 'utf8').matchAll(/```js\n([\s\S]*?)```/g)]
  const code = blocks.map((block) => block[1]!)
  const expected = code.flatMap((text) =>
    [...text.matchAll(/^\/\/ → (.*)$/gm)].map((match) => match[1]!),
  )
  const module = [code[0], ...code.slice(1).map((text) => `{\n${text}}\n`)].join('\n')
  return { module, expected }
}

describe("the package's slabkv/client export", () => {
  it(
    'type-checks a program that imports it, with NodeNext, Node16 and Bundler resolution',
    async () => {
      const nodeNext = await typecheck('tsconfig.json', {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        outDir: 'out',
      })
      expect(nodeNext).toBe('')
      const node16 = await typecheck('tsconfig.node16.json', {
        module: 'Node16',
        moduleResolution: 'Node16',
        noEmit: true,
      })
      expect(node16).toBe('')
      const bundler = await typecheck('tsconfig.bundler.json', {
        module: 'ESNext',
        moduleResolution: 'Bundler',
        noEmit: true,
      })
      expect(bundler).toBe('')
    },
    3 * tscTimeoutMs,
  )

  it('runs that program with node against a real server', async () => {
    const { code, stdout, stderr } = await run([join('out', 'consumer.js'), server.url])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toEqual({
      text: 'hello',
      conflict: '412 precondition_failed',
      batch: [true, true],
      keys: ['package:greeting', 'package:n'],
      gone: expect.any(Number),
      sets: 2,
    })
  })

  it('runs the examples of docs/client.md as written, printing what they say', async () => {
    const { module, expected } = examplesOf('docs/client.md')
    expect(expected.length).toBeGreaterThan(0)
    const own = await startServer()
    writeFileSync(
      join(project, 'examples.mjs'),
      module.replaceAll("'http://127.0.0.1:8000'", JSON.stringify(own.url)),
    )
    const { code, stdout, stderr } = await run(['examples.mjs'])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout.split('\n').slice(0, -1)).toEqual(expected)
    await own.stop()
  })

  it("imports nothing at run time but Node's own modules and its own files", () => {
    const dir = join(root, 'dist', 'src', 'client')
    const imported = readdirSync(dir)
      .filter((name) => name.endsWith('.js'))
      .flatMap((name) => {
        const text = readFileSync(join(dir, name), 'utf8')
        return [
          ...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms),
          ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
        ].map((match) => match[1]!)
      })
    expect(imported.filter((specifier) => !/^(node:|\.\/[\w-]+\.js$)/.test(specifier))).toEqual([])
    expect(imported).toContain('node:http')
  })

  it('keeps the slabkv command that package.json names beside the export', async () => {
    const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    const bin = join('node_modules', 'slabkv', packageJson.bin.slabkv)
    const { code, stdout } = await run([bin, '--version'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
  })
})
