import type { IncomingMessage } from 'node:http'
import type { ServerConfig } from '../config.js'

// DNS rebinding: a web page the user visits points a name it controls at 127.0.0.1, and the
// browser then lets that page read and write this server as its own origin. The Host header
// still carries the attacker's name, so without a token only loopback names are served:
// localhost and its subdomains (RFC 6761: browsers resolve them to loopback themselves),
// 127.0.0.0/8 and [::1], with any port, plus the names --allowed-hosts adds. With a token, a
// page cannot send requests that carry it, so any name is served unless --allowed-hosts is set.
//
// The check runs in the Node server (src/http/server.ts), before the app: a name this server
// does not answer to gets nothing else, not even CORS headers. Done there rather than as a
// Hono middleware for every path, it also keeps the app's router able to answer a GET of a
// static path from its map, which a middleware on * prevents.

/**
 * The host name of an absolute URL, lowercased, without its port (brackets kept for IPv6). The
 * URL parser reads the authority as RFC 3986 does, so text before an @ (userinfo, as in
 * http://localhost:1@attacker.example/) is never taken for the host.
 */
export function hostNameOf(url: string): string {
  return new URL(url).hostname
}

/**
 * The host name a request is for. An absolute-form target names it (RFC 9112 §3.2.2: it takes
 * precedence over Host) and goes through the URL parser; undefined when that fails, for the
 * adapter to refuse as it refuses any target it cannot read. Otherwise the Host header names it,
 * read as it was sent, without its port and lowercased: no URL is built on the way, and a Host
 * that a URL parser would rewrite (userinfo, percent-encoding, numeric IPv4 forms) is compared
 * as sent, so it can only fail to be a loopback name.
 */
function requestHostName(incoming: IncomingMessage): string | undefined {
  const target = incoming.url ?? ''
  if (!target.startsWith('/') && target !== '*') {
    try {
      return hostNameOf(target)
    } catch {
      return undefined
    }
  }
  const host = incoming.headers.host ?? ''
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':')
  return (end > 0 ? host.slice(0, end) : host).toLowerCase()
}

export function isLoopbackName(name: string): boolean {
  return (
    name === 'localhost' ||
    name.endsWith('.localhost') ||
    name === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
  )
}

/**
 * The check for this configuration, or undefined when every name is served: it gives the
 * detail of the 421 for a request for a name this server does not answer to, else undefined.
 */
export function hostCheck(
  config: ServerConfig,
): ((incoming: IncomingMessage) => string | undefined) | undefined {
  if (config.token !== undefined && config.allowedHosts.length === 0) return undefined
  const allowed = new Set(config.allowedHosts)
  return (incoming) => {
    const name = requestHostName(incoming)
    if (name === undefined || isLoopbackName(name) || allowed.has(name)) return undefined
    return `This server answers to loopback names only (localhost, 127.0.0.1, [::1])${
      allowed.size === 0 ? '' : ` and ${[...allowed].join(', ')}`
    }, not '${name}'; --allowed-hosts adds names`
  }
}
