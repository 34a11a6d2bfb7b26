import type { ServerConfig } from '../config.js'

// DNS rebinding: a web page the user visits points a name it controls at 127.0.0.1, and the
// browser then lets that page read and write this server as its own origin. The Host header
// still carries the attacker's name, so without a token only loopback names are served:
// localhost and its subdomains (RFC 6761: browsers resolve them to loopback themselves),
// 127.0.0.0/8 and [::1], with any port, plus the names --allowed-hosts adds. With a token, a
// page cannot send requests that carry it, so any name is served unless --allowed-hosts is set.
//
// The check runs in the Node server (src/http/server.ts), between the adapter, which refuses a
// target or Host it cannot read, and the app: a name this server does not answer to gets
// nothing else, not even CORS headers. Done there rather than as a Hono middleware for every
// path, it also keeps the app's router able to answer a GET of a static path from its map,
// which a middleware on * prevents.

/** What the check reads of a request: its target as sent, and its Host header. */
interface RequestHead {
  url?: string | undefined
  headers: { host?: string | undefined }
}

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
 * precedence over Host) and goes through the URL parser (the adapter has refused those it cannot
 * read; undefined should one fail anyway). Otherwise the Host header names it,
 * read as it was sent, without its port and lowercased: no URL is built on the way, and a Host
 * that a URL parser would rewrite (userinfo, percent-encoding, numeric IPv4 forms) is compared
 * as sent, so it can only fail to be a loopback name.
 */
function requestHostName(incoming: RequestHead): string | undefined {
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
): ((incoming: RequestHead) => string | undefined) | undefined {
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
