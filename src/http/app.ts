import assert, { AssertionError } from 'node:assert'
import type { HttpBindings } from '@hono/node-server'
import { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { StorageFailedError } from '../durability.js'
import { bearerAuth } from './auth.js'
import { ClientGoneError } from './body.js'
import { corsHandler } from './cors.js'
import type { App, AppDeps, RouteDeps } from './deps.js'
import { registerDocs } from './docs.js'
import { Evictions } from './evictions.js'
import { registerOpenApi } from './openapi.js'
import { operations } from './request-times.js'
import { errorResponse, isPykvPath, problemResponse } from './respond.js'
import { registerBatchRoute } from './routes/batch.js'
import { registerClusterRoute } from './routes/cluster.js'
import { registerKvRoutes } from './routes/kv.js'
import { registerListRoute } from './routes/list.js'
import { registerOpsRoutes } from './routes/ops.js'
import { registerPykvRoutes } from './routes/pykv.js'
import { registerWatchRoute } from './routes/watch.js'
import { registerUi } from './ui.js'
import { pykvValidationError, validationHook } from './validation.js'

// createApp(deps) → the Hono app. It opens no socket and knows nothing of threads: the caller
// hands it a store, a durability waiter and the configuration, and serves its fetch handler
// (workers/http-worker.ts, in each handler thread).

const methodsWithBody = new Set(['POST', 'PUT', 'PATCH'])

export function createApp(deps: AppDeps): App {
  const app = new OpenAPIHono({ defaultHook: validationHook })

  // Before the token: a preflight never carries it. (The Host check comes before either, in the
  // Node server: src/http/host.ts.) Absent without --cors-origins.
  const cors = corsHandler(deps.config.corsOrigins)
  if (cors !== undefined) app.use('*', cors)
  if (deps.config.token !== undefined) app.use('*', bearerAuth(deps.config.token))
  // Request bodies are bounded. A body with a Content-Length is judged by it (Node's parser
  // never reads past it); only a chunked body is counted as it streams in, by Hono's bodyLimit.
  // bodyLimit reads the raw request, which makes the Node adapter build a full web Request and
  // read the body through web streams: on every request that was a quarter of a GET's server
  // time, and on a PUT it cost five times the whole request of the Hono + Map reference.
  const bodySizeMax = deps.config.bodySizeMax
  const tooLargeDetail = `The request body is larger than ${bodySizeMax} bytes, the limit (--max-body-size)`
  const tooLarge = (c: Context) => errorResponse(c, 'body_too_large', tooLargeDetail)
  const limitChunkedBody = bodyLimit({ maxSize: bodySizeMax, onError: tooLarge })
  // Registered for the methods that carry a body only, so a GET passes through no middleware.
  app.on([...methodsWithBody], '*', async (c, next) => {
    const length = c.req.header('content-length')
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) {
      return limitChunkedBody(c, next)
    }
    return Number(length) > bodySizeMax ? tooLarge(c) : next()
  })

  // While the log cannot take writes (the disk is full, or a sync failed), a write is refused
  // before it changes anything: the store must never hold what the log could not record.
  // A batch decides for itself, since a batch of reads is still served.
  const { durability } = deps
  app.on(['PUT', 'POST', 'DELETE'], '*', async (c, next) => {
    const refusal = durability.refusal()
    if (refusal === undefined || c.req.path === '/v1/batch') return next()
    return errorResponse(c, refusal)
  })

  const routeDeps: RouteDeps = { ...deps, evictions: new Evictions(deps.store, deps.log) }
  registerPykvRoutes(app, routeDeps)
  registerKvRoutes(app, routeDeps)
  registerListRoute(app, deps)
  registerBatchRoute(app, routeDeps)
  registerOpsRoutes(app, deps)
  registerClusterRoute(app, deps)
  if (deps.changes !== undefined) registerWatchRoute(app, deps, deps.changes)
  registerUi(app)

  // Every operation has its place in the request-time histogram (src/http/request-times.ts).
  for (const definition of app.openAPIRegistry.definitions) {
    if (definition.type !== 'route') continue
    const { operationId } = definition.route
    assert.ok(
      (operations as readonly unknown[]).includes(operationId),
      `operation ${operationId} is missing from src/http/request-times.ts`,
    )
  }
  registerOpenApi(app, deps.config.token !== undefined)
  registerDocs(app)

  app.notFound((c) => problemResponse('route_not_found', `${c.req.method} ${c.req.path}`))
  app.onError((error, c) => {
    // Hono's JSON validator throws a 400 for a body that does not parse.
    if (error instanceof HTTPException && error.status === 400) {
      return isPykvPath(c.req.path)
        ? c.json(pykvValidationError('json_invalid', ['body', 0], 'JSON decode error'), 422)
        : problemResponse('invalid_json', error.message)
    }
    if (error instanceof HTTPException && error.status === 415) {
      // A body that is not declared JSON where JSON is expected.
      return isPykvPath(c.req.path)
        ? c.json(
            pykvValidationError(
              'model_attributes_type',
              ['body'],
              'Input should be a valid JSON object',
            ),
            422,
          )
        : problemResponse('invalid_request', 'The body must be application/json')
    }
    if (error instanceof HTTPException) return error.getResponse()
    if (error instanceof StorageFailedError) return errorResponse(c, 'storage_failed')
    const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming
    if (error instanceof ClientGoneError || (incoming?.destroyed && !incoming.complete)) {
      // Nobody is left to answer, and nothing is wrong with the server: not an error.
      deps.log.info('client went away', { method: c.req.method, path: c.req.path })
      return problemResponse('invalid_request', error.message)
    }
    if (error instanceof AssertionError) {
      // An invariant failed: the shared buffer may be half-written. Never carry on with it;
      // crash, and let recovery rebuild the state. Thrown outside the request so
      // nothing in the HTTP stack can swallow it.
      deps.log.error('invariant violated', {
        method: c.req.method,
        path: c.req.path,
        error: String(error),
      })
      process.nextTick(() => {
        throw error
      })
      return problemResponse('internal')
    }
    deps.log.error('request failed', {
      method: c.req.method,
      path: c.req.path,
      error: String(error),
    })
    return problemResponse('internal')
  })
  return app
}
