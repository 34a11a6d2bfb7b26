import type { Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import type { ServerConfig } from '../config.js'
import type { Log } from '../log.js'
import type { App } from './deps.js'
import type { RequestTimes } from './request-times.js'
import { createHttpServer } from './server.js'

// Serving one handler thread: its HTTP server on the shared port, and its graceful close. Every
// handler thread binds the same port with reusePort (Node ≥ 22.12), and the kernel spreads
// incoming connections across them.

/** Node ≥ 22.12 lets threads of one process share a port (reusePort); slabkv needs it. */
export function supportsReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 12)
}

/** The app's fetch handler served on config.port, listening once this resolves. */
export async function listen(
  fetch: App['fetch'],
  config: ServerConfig,
  log: Log,
  requestTimes?: RequestTimes,
): Promise<Server> {
  const server = createHttpServer(fetch, config, log, requestTimes)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: config.port, host: config.host, reusePort: true }, () => resolve())
  })
  return server
}

/**
 * The port the handler threads will bind: config.port once nothing listens on it (EADDRINUSE
 * otherwise, as a single listener would get), or a free port the kernel picks for port 0.
 * Linux lets any socket with reusePort from the same user join a port, so without this check a
 * second slabkv started on the port would silently share the first one's connections; a plain
 * bind is refused by every listener, reusePort or not. The probe closes before the threads
 * bind, so two servers starting in the same instant can still both pass.
 */
export async function claimPort(config: ServerConfig): Promise<number> {
  const probe = createNetServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen({ port: config.port, host: config.host }, () => resolve())
  })
  const address = probe.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

export async function closeGracefully(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // close() stops accepting and closes the connections idle at that moment; requests in flight
  // finish. A kept-alive connection whose request finishes afterwards would otherwise stay
  // open until its keep-alive timeout, so idle connections are closed again every few ms.
  // Past the shutdown timeout, whatever is left is cut.
  const sweeper = setInterval(() => server.closeIdleConnections(), drainPollMs)
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs)
  timer.unref()
  server.closeIdleConnections()
  await closed
  clearInterval(sweeper)
  clearTimeout(timer)
}

/** How often a draining server closes connections that have gone idle. */
const drainPollMs = 20

/** The host as it goes into a URL: an IPv6 address in brackets. */
export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
