import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { packageRoot } from '../package.js'
import type { App } from './deps.js'
import { respondWithFile, type StaticFile, staticFile } from './static-file.js'

// The web UI: the files in public/, read once per thread when first needed and served from
// memory at the root, same origin as the API, under a strict Content-Security-Policy.
// A request is answered only when its path equals the name of a file that was in public/
// (no subdirectories), so no part of a URL ever reaches the file system: `..`, encoded or
// not, names no file and gets the ordinary 404.

/**
 * Everything the page loads comes from this origin, and nothing runs or styles inline: the UI
 * has no inline scripts, style attributes or event-handler attributes, so an injected one is
 * refused by the browser. `data:` images are allowed for the icon; framing is refused
 * (clickjacking), and <base> and form targets cannot point elsewhere.
 */
export const uiContentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ')

/** The only kinds of file served; anything else in public/ (its README) stays private. */
const mediaTypeOfExtension: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

interface UiFile extends StaticFile {
  mediaType: string
}

let filesByPath: Map<string, UiFile> | undefined

/** public/ sits at the package root. */
function publicDir(): string {
  return join(packageRoot, 'public')
}

function uiFiles(): Map<string, UiFile> {
  if (filesByPath !== undefined) return filesByPath
  filesByPath = new Map()
  const dir = publicDir()
  // A missing public/ (a trimmed install) serves no UI rather than failing the server.
  const entries = existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : []
  for (const entry of entries) {
    const mediaType = mediaTypeOfExtension[extname(entry.name)]
    if (!entry.isFile() || mediaType === undefined) continue
    const file = staticFile(new Uint8Array(readFileSync(join(dir, entry.name))))
    filesByPath.set(`/${entry.name}`, { ...file, mediaType })
  }
  const index = filesByPath.get('/index.html')
  if (index !== undefined) filesByPath.set('/', index)
  return filesByPath
}

/** True for the paths of the UI's files, which load without a token (the page asks for it). */
export function isUiPath(path: string): boolean {
  return uiFiles().has(path)
}

/**
 * One route per file, by its exact path, so the hot API routes gain no middleware and no
 * wildcard match.
 */
export function registerUi(app: App): void {
  for (const [path, file] of uiFiles()) {
    const headers = {
      'Content-Type': file.mediaType,
      'Content-Security-Policy': uiContentSecurityPolicy,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      // Revalidate every time: a new server version must never run against an old app.js.
      'Cache-Control': 'no-cache',
    }
    app.get(path, (c) => respondWithFile(c, file, headers))
  }
}
