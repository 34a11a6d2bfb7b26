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
// Each route declares the answers its handler gives. The answers that come from before any
// route (the connection layer in server.ts, the host check and the token in app.ts) are added
// here to every operation, so that a generated client knows them without each route repeating
// them. Those added are the ones a client speaking correct HTTP can get (see connectionAnswers);
// 413 for a body over --max-body-size is declared by each route that takes a body, in its own
// shape (FastAPI's on /set), and docs/api.md says so.
//
// With a token configured, the document says so: an http bearer scheme required everywhere but
// on the probes, and the 401 every other operation can answer. Swagger UI then offers
// Authorize, and shows a 401 as a documented answer. Without one, `security: []` says that no
// operation needs credentials (rather than leaving it unsaid, which linters flag).

const info = {
  title: 'slabkv',
  version: packageVersion,
  description: 'An in-memory key-value store whose LRU lives in one SharedArrayBuffer.',
  license: { name: 'MIT', identifier: 'MIT' },
}

/** The same origin as the document: a node serves its own API wherever it is reached. */
const servers = [{ url: '/', description: 'The server this document came from' }]

const problemRef = { $ref: '#/components/schemas/Problem' }
const problemAnswer = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: problemRef } },
})

/**
 * Answers any request can get before a route sees it, as problem+json on every path (the PyKV
 * routes included: their FastAPI shapes are for what their handlers decide). Left out, because
 * only a client sending what HTTP/1.1 or this server does not support gets them: 400 for a
 * request that is not valid HTTP, 417 for an Expect other than 100-continue, 501 for a transfer
 * coding other than chunked. 404 route_not_found is for paths the document does not list.
 */
const connectionAnswers = {
  HostNotAllowed: {
    status: '421',
    response: problemAnswer(
      'The Host is not a name this server answers to (loopback names and --allowed-hosts; with --token and no --allowed-hosts, any name): code host_not_allowed',
    ),
  },
  RequestTimeout: {
    status: '408',
    response: problemAnswer(
      'The request was not complete within --headers-timeout-ms / --request-timeout-ms: code request_timeout; the connection closes',
    ),
  },
  TooManyRequests: {
    status: '429',
    response: problemAnswer(
      'More requests of this connection wait for their answers than --max-pipelined-requests allows: code too_many_pipelined_requests; the connection closes',
    ),
  },
  HeadersTooLarge: {
    status: '431',
    response: problemAnswer(
      "The request headers are larger than Node's limit: code headers_too_large; the connection closes",
    ),
  },
} as const

const unauthorized = problemAnswer(
  'No valid bearer token (the server was started with --token): code unauthorized',
)

type Operation = { security?: unknown[]; responses?: Record<string, unknown> }
type Document = ReturnType<App['getOpenAPI31Document']>

/** Adds the answer under `status` unless the route declares its own (its shape wins). */
function declare(operation: Operation, status: string, name: string): void {
  operation.responses ??= {}
  operation.responses[status] ??= { $ref: `#/components/responses/${name}` }
}

/** The document, with what comes from before the routes, and the token's requirements. */
function documentOf(app: App, tokenRequired: boolean): Document {
  const document = app.getOpenAPI31Document({ openapi: '3.1.0', info, servers })
  const responses: NonNullable<Document['components']>['responses'] = {}
  for (const [name, { response }] of Object.entries(connectionAnswers)) responses[name] = response
  if (tokenRequired) responses.Unauthorized = unauthorized
  document.components = { ...document.components, responses }
  document.security = []
  if (tokenRequired) {
    document.components = {
      ...document.components,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    }
    document.security = [{ bearer: [] }]
  }
  for (const [path, operations] of Object.entries(document.paths ?? {})) {
    for (const operation of Object.values(operations as Record<string, Operation>)) {
      for (const [name, { status }] of Object.entries(connectionAnswers)) {
        declare(operation, status, name)
      }
      if (!tokenRequired) continue
      if (isOpenPath(path)) operation.security = []
      else declare(operation, '401', 'Unauthorized')
    }
  }
  return document
}

export function registerOpenApi(app: App, tokenRequired: boolean): void {
  // Registered by name so that every answer above can refer to it, whichever routes exist.
  app.openAPIRegistry.register('Problem', problemSchema)
  let file: StaticFile | undefined
  const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' }
  app.get(openApiPath, (c) => {
    file ??= staticFile(new TextEncoder().encode(JSON.stringify(documentOf(app, tokenRequired))))
    return respondWithFile(c, file, headers)
  })
}
