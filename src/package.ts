import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Where slabkv's own files are: the package root is the nearest directory above this module
// that holds package.json. It is found by looking upwards because a module runs from src/ in
// some tests and from dist/src/ once compiled, one directory deeper.

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('slabkv: no package.json above src/package.ts')
    dir = parent
  }
  return dir
}

export const packageRoot = findPackageRoot()

/** The version in package.json: the CLI's --version, /v1/cluster and the OpenAPI document. */
export const packageVersion: string = (
  JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }
).version
