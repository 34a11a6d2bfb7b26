import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

// Node 20 workers cannot load TypeScript, so tests that start threads run the copies tsc
// compiled into dist/ (`npm test` builds first). A stale copy would test old code: refuse it.

const root = new URL('../../', import.meta.url)

/** The compiled copy of a source file (a path from the repository's root). */
export function distUrl(path: string): URL {
  return new URL(`dist/${path.replace(/\.ts$/, '.js')}`, root)
}

/** A source file of the repository, by its path from the root. */
export function sourceUrl(path: string): URL {
  return new URL(path, root)
}

/** Throws unless every source file has a compiled copy in dist/ at least as new as itself. */
export function assertBuilt(paths: readonly string[]): void {
  for (const path of paths) {
    const compiled = distUrl(path)
    if (!existsSync(compiled)) {
      throw new Error(`${fileURLToPath(compiled)} is missing: run npm run build first`)
    }
    if (statSync(compiled).mtimeMs < statSync(sourceUrl(path)).mtimeMs) {
      throw new Error(`dist/ is older than ${path}: run npm run build first`)
    }
  }
}
