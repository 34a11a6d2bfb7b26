import { rawRequest } from '../support/raw-http.js'
import { keySegment } from './inputs.js'
import { Mismatch } from './model.js'
import {
  chooseKey,
  isProblem,
  jsonBody,
  loopbackHost,
  request,
  type Step,
  type StepContext,
} from './step.js'

// Requests around the data: probes and stats, routes that do not exist, a key route without a
// key, an HTTP/1.0 request without Host, and a Host that is not this server's (DNS rebinding),
// which must change nothing.

function fixed(what: string, bytes: Buffer, fits: Step['check'], closes = false): Step {
  return { what, request: bytes, head: false, check: fits, unanswered() {}, closes }
}

function expectStatus(what: string, status: number, json: boolean): Step['check'] {
  return (response) => {
    const parsed = json ? jsonBody(response) : undefined
    if (response.status !== status || (json && parsed === undefined)) {
      throw new Mismatch(`${what} answered ${response.status}; expected ${status}`)
    }
  }
}

function expectProblem(what: string, allowed: [number, string][]): Step['check'] {
  return (response) => {
    if (!isProblem(response, allowed)) {
      throw new Mismatch(
        `${what} answered ${response.status} ${response.body}; expected ${allowed}`,
      )
    }
  }
}

export function miscStep(context: StepContext, { closing }: { closing: boolean }): Step {
  const { choices, model } = context
  const host = loopbackHost(choices)
  const roll = choices.int(0, closing ? 8 : 7)
  switch (roll) {
    case 0:
      return fixed(
        'GET /healthz',
        request('GET', '/healthz', host),
        expectStatus('/healthz', 200, true),
      )
    case 1: {
      const ready = expectStatus('/readyz', 200, true)
      const check: Step['check'] = (response, at) => {
        if (response.status !== 503) ready(response, at)
      }
      return {
        ...fixed('GET /readyz', request('GET', '/readyz', host), check),
        mayBeUnavailable: true,
      }
    }
    case 2:
      return fixed(
        'GET /v1/stats',
        request('GET', '/v1/stats', host),
        expectStatus('/v1/stats', 200, true),
      )
    case 3:
      return fixed(
        'GET /metrics',
        request('GET', '/metrics', host),
        expectStatus('/metrics', 200, false),
      )
    case 4:
      return fixed(
        'GET /no/such/route',
        request('GET', '/no/such/route', host),
        expectProblem('an unknown route', [[404, 'route_not_found']]),
      )
    case 5: {
      const method = choices.pick(['PUT', 'GET', 'DELETE'])
      return fixed(
        `${method} /v1/kv/`,
        request(method, '/v1/kv/', host, method === 'PUT' ? 'v' : undefined),
        expectProblem('a key route without a key', [[400, 'key_empty']]),
      )
    }
    case 6:
    case 7: {
      // A page on another origin that resolved its name to 127.0.0.1: refused, changing nothing.
      const { key } = chooseKey(context, { faults: 0 })
      const method = choices.pick(['PUT', 'DELETE', 'GET'])
      const hostile = {
        Host: choices.pick(['attacker.example', 'attacker.example:8000', '10.0.0.1']),
      }
      const what = `${method} with Host ${hostile.Host}`
      const check: Step['check'] = (response, at) => {
        model.resolve(key, at, response, what, (state) =>
          isProblem(response, [[421, 'host_not_allowed']]) ? { next: state } : 'expected 421',
        )
      }
      const bytes = request(
        method,
        `/v1/kv/${keySegment(key)}`,
        hostile,
        method === 'PUT' ? 'x' : undefined,
      )
      return fixed(what, bytes, check)
    }
    default:
      return fixed(
        'GET /v1/stats over HTTP/1.0 without Host',
        rawRequest('GET', '/v1/stats', {}, undefined, 'HTTP/1.0'),
        expectProblem('HTTP/1.0 without Host', [[400, 'invalid_request']]),
        true,
      )
  }
}
