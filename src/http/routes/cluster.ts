import os from 'node:os'
import { createRoute, z } from '@hono/zod-openapi'
import { packageVersion } from '../../package.js'
import type { App, AppDeps } from '../deps.js'
import { timedAs } from '../request-times.js'

// Who this node is, for an operator running several behind a balancer (docs/scale-out.md):
// its name, its version, when it started, and the configuration that decides what it holds and
// how it acknowledges. Nodes never talk to each other, so this describes this node alone; the
// balancer, not the nodes, knows the cluster. Every handler thread answers the same.

const limitsSchema = z.object({
  entryCountMax: z.number().int().openapi({ description: '--max-entries' }),
  memorySizeMax: z.number().int().openapi({ description: '--max-memory, in bytes' }),
  keySizeMax: z.number().int().openapi({ description: '--max-key-size, in bytes' }),
  valueSizeMax: z.number().int().openapi({ description: '--max-value-size, in bytes' }),
})

const clusterSchema = z.object({
  nodeId: z.string().openapi({ description: '--node-id; by default <hostname>:<port>' }),
  hostname: z.string(),
  pid: z.number().int(),
  version: z.string().openapi({ description: "slabkv's version" }),
  nodejsVersion: z.string(),
  startedAt: z.string().openapi({ description: 'ISO 8601, UTC' }),
  uptimeSeconds: z.number().int(),
  threads: z.number().int(),
  config: z.object({
    host: z.string(),
    port: z.number().int(),
    auth: z.boolean().openapi({ description: 'Whether a bearer token is required' }),
    dataDir: z.string(),
    fsync: z.enum(['always', 'everysec', 'no']),
    limits: limitsSchema,
    bodySizeMax: z.number().int(),
    batchOpCountMax: z.number().int(),
    batchReadSizeMax: z.number().int(),
    jsonDepthMax: z.number().int(),
    headersTimeoutMs: z.number().int(),
    requestTimeoutMs: z.number().int(),
    keepAliveTimeoutMs: z.number().int(),
    sendTimeoutMs: z.number().int(),
    pipelinedRequestCountMax: z.number().int(),
    segmentSizeMax: z.number().int(),
    snapshotLogSizeMin: z.number().int(),
  }),
})

const clusterRoute = createRoute({
  method: 'get',
  path: '/v1/cluster',
  operationId: 'getCluster',
  middleware: timedAs('getCluster'),
  summary: "This node's identity and configuration (nodes are independent; see docs/scale-out.md)",
  responses: {
    200: {
      description: 'This node',
      content: { 'application/json': { schema: clusterSchema } },
    },
  },
})

export function registerClusterRoute(app: App, { config, runtime }: AppDeps): void {
  // Read once per app: everything below is fixed for the life of the process but the uptime.
  const version = packageVersion
  const { limits } = config
  const identity = {
    nodeId: config.nodeId,
    hostname: os.hostname(),
    pid: process.pid,
    version,
    nodejsVersion: process.version,
    startedAt: new Date(runtime.startedAtMs).toISOString(),
    threads: runtime.threadCount,
    config: {
      host: config.host,
      port: config.port,
      auth: config.token !== undefined,
      dataDir: config.dataDir,
      fsync: runtime.fsync ?? config.fsync,
      limits: {
        entryCountMax: limits.entryCountMax,
        memorySizeMax: limits.memorySizeMax,
        keySizeMax: limits.keySizeMax,
        valueSizeMax: limits.valueSizeMax,
      },
      bodySizeMax: config.bodySizeMax,
      batchOpCountMax: config.batchOpCountMax,
      batchReadSizeMax: config.batchReadSizeMax,
      jsonDepthMax: config.jsonDepthMax,
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      sendTimeoutMs: config.sendTimeoutMs,
      pipelinedRequestCountMax: config.pipelinedRequestCountMax,
      segmentSizeMax: config.segmentSizeMax,
      snapshotLogSizeMin: config.snapshotLogSizeMin,
    },
  }
  app.openapi(clusterRoute, (c) => {
    const uptimeSeconds = Math.round((Date.now() - runtime.startedAtMs) / 1000)
    return c.json({ ...identity, uptimeSeconds }, 200)
  })
}
