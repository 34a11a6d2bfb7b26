import type { Choices } from './inputs.js'
import type { Step } from './step.js'

// How a request goes on the wire, varied without changing what it asks: its body chunked in
// random pieces instead of sized by Content-Length, its target in absolute form
// (http://localhost/...; RFC 9112 §3.2.2), and Expect: 100-continue. Each rewrites the bytes a
// step builder made, so every builder gets them and the step's check stays as it is.

/** The limit a chunked body must stay within: over it, the server stops reading mid-body. */
export interface FramingLimits {
  bodySizeMax: number
}

/**
 * Rewrites the step's request, each change with its own chance; `last` says whether it ends its
 * round (Expect: 100-continue only there: a request refused before its body is read then ends
 * the connection, since the client was not to send the body).
 */
export function spellRequest(
  step: Step,
  choices: Choices,
  { last, limits }: { last: boolean; limits: FramingLimits },
): Step {
  const headEnd = step.request.indexOf('\r\n\r\n')
  if (headEnd < 0) return step
  let lines = step.request.subarray(0, headEnd).toString('latin1').split('\r\n')
  let body = step.request.subarray(headEnd + 4)
  const notes: string[] = []
  const [method, target, version] = (lines[0] ?? '').split(' ')
  const hasHost = lines.some((line) => /^host:/i.test(line))
  // Absolute form only where the Host names this server: the target's host then takes its place.
  if (target?.startsWith('/') && hasHost && version === 'HTTP/1.1' && choices.chance(0.1)) {
    lines[0] = `${method} http://${choices.pick(['localhost', '127.0.0.1:8000', 'LOCALHOST'])}${target} ${version}`
    notes.push('absolute-form')
  }
  const length = lines.findIndex((line) => /^content-length:/i.test(line))
  if (length >= 0 && body.byteLength <= limits.bodySizeMax && choices.chance(0.15)) {
    lines = lines.filter((_, index) => index !== length)
    lines.push('Transfer-Encoding: chunked')
    body = chunked(body, choices)
    notes.push('chunked')
  }
  if (last && method === 'PUT' && choices.chance(0.2)) {
    lines.push('Expect: 100-continue')
    notes.push('Expect: 100-continue')
  }
  if (notes.length === 0) return step
  return {
    ...step,
    what: `${step.what} (${notes.join(', ')})`,
    request: Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]),
  }
}

/** The body as chunks of random sizes, then the last (empty) chunk. */
function chunked(body: Buffer, choices: Choices): Buffer {
  const pieces: Buffer[] = []
  for (let at = 0; at < body.byteLength; ) {
    const size = Math.min(body.byteLength - at, choices.pick([1, 7, 512, 4096, 65536]))
    pieces.push(Buffer.from(`${size.toString(16)}\r\n`, 'latin1'), body.subarray(at, at + size))
    pieces.push(Buffer.from('\r\n', 'latin1'))
    at += size
  }
  pieces.push(Buffer.from('0\r\n\r\n', 'latin1'))
  return Buffer.concat(pieces)
}
