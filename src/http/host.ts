import type { HttpBindings } from '@hono/node-server'
import type { Context, MiddlewareHandler } from 'hono'
import type { ServerConfig } from '../config.js'
import { problemResponse } from './respond.js'

// DNS rebinding: a web page the user visits points a name it controls at 127.0.0.1, and the
// browser then lets that page read and write this server as its own origin. The Host header
// still carries the attacker's name, so without a token only loopback names are served:
// localhost and its subdomains (RFC 6761: browsers resolve them to loopback themselves),
// 127.0.0.0/8 and [::1], with any port, plus the names --allowed-hosts adds. With a token, a
// page cannot send requests that carry it, so any name is served unless --allowed-hosts is set.

/**
 * The host name of an absolute URL, lowercased, without its port (brackets kept for IPv6). The
 * URL parser reads the authority as RFC 3986 does, so text before an @ (userinfo, as in
 * http://localhost:1@attacker.example/) is never taken for the host.
 */
export function hostNameOf(url: string): string {
  return new URL(url).hostname
}

/**
 * The host name a request is for. An origin-form target (/path) names it in the Host header,
 * read here as it was sent, without its port and lowercased: no URL is built on the way, and a
 * Host that a URL parser would rewrite (userinfo, percent-encoding, numeric IPv4 forms) is
 * compared as sent, so it can only fail to be a loopback name. An absolute-form target, or an
 * app run without the Node adapter, goes through the URL parser.
 */
function requestHostName(c: Context): string {
  const target = (c.env as Partial<HttpBindings> | undefined)?.incoming?.url
  const host = c.req.header('host')
  if (target === undefined || !target.startsWith('/') || host === undefined) {
    return hostNameOf(c.req.url)
  }
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

/** Refuses requests for names this server does not answer to (421), or undefined for none. */
export function hostCheck(config: ServerConfig): MiddlewareHandler | undefined {
  if (config.token !== undefined && config.allowedHosts.length === 0) return undefined
  const allowed = new Set(config.allowedHosts)
  return async (c, next) => {
    // The adapter builds the URL from the Host header, or from an absolute request target,
    // which RFC 9112 §3.2.2 says takes precedence over Host.
    const name = requestHostName(c)
    if (isLoopbackName(name) || allowed.has(name)) return next()
    const detail = `This server answers to loopback names only (localhost, 127.0.0.1, [::1])${
      allowed.size === 0 ? '' : ` and ${[...allowed].join(', ')}`
    }, not '${name}'; --allowed-hosts adds names`
    return problemResponse('host_not_allowed', detail)
  }
}
