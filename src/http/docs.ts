import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { SwaggerUI } from '@hono/swagger-ui'
import type { App } from './deps.js'
import { respondWithFile, type StaticFile, staticFile } from './static-file.js'
import { uiContentSecurityPolicy } from './ui.js'

// Swagger UI at /docs, served entirely from this server. @hono/swagger-ui points the page at a
// CDN by default, which leaves /docs blank wherever the browser has no internet (this machine,
// many production networks); here its asset base is /docs/assets, where the files of the
// swagger-ui-dist package are served from memory. The page starts Swagger UI from a script file
// rather than inline, so it runs under a policy that allows nothing but this origin, like the
// web UI's.

const assetBase = '/docs/assets'

/** Where openapi.ts serves the OpenAPI document the page shows. */
export const openApiPath = '/openapi.json'

/** Started from a file, not inline, so the policy needs no 'unsafe-inline'. */
const initScript = `window.ui = SwaggerUIBundle({ url: '${openApiPath}', dom_id: '#swagger-ui' })\n`

interface DocsAsset {
  path: string
  mediaType: string
  read: () => Uint8Array<ArrayBuffer>
}

function readDist(name: string): Uint8Array<ArrayBuffer> {
  // The package's main module sits at its root, beside the files; resolving it rather than a
  // subpath keeps working should the package ever declare "exports".
  const dist = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist'))
  return new Uint8Array(readFileSync(join(dist, name)))
}

/** What the page loads. The dist paths are the ones @hono/swagger-ui builds from the base. */
const assets: DocsAsset[] = [
  {
    path: `${assetBase}/swagger-ui-dist/swagger-ui.css`,
    mediaType: 'text/css; charset=utf-8',
    read: () => readDist('swagger-ui.css'),
  },
  {
    path: `${assetBase}/swagger-ui-dist/swagger-ui-bundle.js`,
    mediaType: 'text/javascript; charset=utf-8',
    read: () => readDist('swagger-ui-bundle.js'),
  },
  {
    // Without an icon the browser asks for /favicon.ico and logs the 404 as an error.
    path: `${assetBase}/swagger-ui-dist/favicon-32x32.png`,
    mediaType: 'image/png',
    read: () => readDist('favicon-32x32.png'),
  },
  {
    path: `${assetBase}/init.js`,
    mediaType: 'text/javascript; charset=utf-8',
    read: () => new TextEncoder().encode(initScript),
  },
]

/**
 * The web UI's policy: Swagger UI, too, draws its icons as data: images and sets styles only
 * through the DOM, which style-src does not govern.
 */
const securityHeaders = {
  'Content-Security-Policy': uiContentSecurityPolicy,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
}

/**
 * The page. @hono/swagger-ui's SwaggerUI builds the asset URLs from the base and renders the body;
 * the document around it is ours, because its own middleware puts everything in <body>, where
 * Chromium does not look for the icon link and asks for /favicon.ico instead.
 */
const pageHtml = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>slabkv API</title>
    <link rel="icon" type="image/png" href="${assetBase}/swagger-ui-dist/favicon-32x32.png" />
  </head>
  <body>
${SwaggerUI({
  // Required by the options' type; the page itself is manual, and init.js names the document.
  url: openApiPath,
  baseUrl: assetBase,
  manuallySwaggerUIHtml: (asset) =>
    [
      '<div id="swagger-ui"></div>',
      ...asset.css.map((url) => `<link rel="stylesheet" href="${url}" />`),
      ...asset.js.map((url) => `<script src="${url}"></script>`),
      `<script src="${assetBase}/init.js"></script>`,
    ].join('\n'),
})}
  </body>
</html>
`

/** Checked by bearerAuth on every request a token guards, so one lookup, not a walk. */
const docsPaths = new Set(['/docs', openApiPath, ...assets.map((asset) => asset.path)])

/**
 * True for /docs, its files and the OpenAPI document, which load without a token: they hold the
 * API's shape, no data, and a browser cannot send a bearer token when it opens a page. Swagger
 * UI's Authorize button then adds the token to the requests it tries.
 */
export function isDocsPath(path: string): boolean {
  return docsPaths.has(path)
}

export function registerDocs(app: App): void {
  app.get('/docs', (c) => c.html(pageHtml, 200, securityHeaders))
  for (const asset of assets) {
    // Read on first request, once per thread: 2 MB that a server nobody browses never holds.
    let file: StaticFile | undefined
    const headers = {
      ...securityHeaders,
      'Content-Type': asset.mediaType,
      // Revalidated every time, so a new swagger-ui-dist never runs against an old page.
      'Cache-Control': 'no-cache',
    }
    app.get(asset.path, (c) => {
      file ??= staticFile(asset.read())
      return respondWithFile(c, file, headers)
    })
  }
}
