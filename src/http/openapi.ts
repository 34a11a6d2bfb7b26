import { z } from '@hono/zod-openapi'
import { packageVersion } from '../package.js'
import { isOpenPath } from './auth.js'
import type { App } from './deps.js'
import { openApiPath } from './docs.js'
import { problemSchema } from './respond.js'
import { respondWithFile, type StaticFile, staticFile } from './static-file.js'

// The OpenAPI document at /openapi.json, generated from the routes' definitions once per thread,
// on first request (every route is registered by then), and served from memory with an ETag.
// @hono/zod-openapi's doc31() would regenerate it on every request, about 1.8 ms of CPU each
// here; the document loads without a token (see auth.ts), so that was CPU anyone could burn.
//
// With a token configured, the document says so: an http bearer scheme required everywhere but
// on the probes, and the 401 every other operation can answer. Swagger UI then offers
// Authorize, and shows a 401 as a documented answer.

const info = {
  title: 'slabkv',
  version: packageVersion,
  description: 'An in-memory key-value store whose LRU lives in one SharedArrayBuffer.',
}

const unauthorized = {
  description: 'No valid bearer token (the server was started with --token)',
  content: {
    'application/problem+json': {
      // Added to the document after it is generated, so in JSON Schema form.
      schema: z.toJSONSchema(problemSchema, { target: 'openapi-3.0' }),
    },
  },
}

type Operations = Record<string, { security?: unknown[]; responses?: Record<string, unknown> }>

/** The document as JSON text, with the token's requirements when one is configured. */
function documentText(app: App, tokenRequired: boolean): string {
  const document = app.getOpenAPI31Document({ openapi: '3.1.0', info })
  if (tokenRequired) {
    document.components = {
      ...document.components,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    }
    document.security = [{ bearer: [] }]
    for (const [path, operations] of Object.entries(document.paths ?? {})) {
      for (const operation of Object.values(operations as Operations)) {
        if (isOpenPath(path)) operation.security = []
        else operation.responses = { ...operation.responses, '401': unauthorized }
      }
    }
  }
  return JSON.stringify(document)
}

export function registerOpenApi(app: App, tokenRequired: boolean): void {
  let file: StaticFile | undefined
  const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' }
  app.get(openApiPath, (c) => {
    file ??= staticFile(new TextEncoder().encode(documentText(app, tokenRequired)))
    return respondWithFile(c, file, headers)
  })
}
