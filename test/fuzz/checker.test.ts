import { describe, expect, it } from 'vitest'
import { prng } from '../support/random.js'
import type { RawResponse } from '../support/raw-http.js'
import { Choices } from './inputs.js'
import { getStep } from './kv-steps.js'
import { Mismatch, Model } from './model.js'
import type { StepContext } from './step.js'

// Canaries for the generative test's checker: answers a wrong server would give must be
// refused, or the whole-server test could pass against anything.

const key = 'p00/canary'
const moment = { sentMs: Date.now(), receivedMs: Date.now() }

function contextWith(model: Model): StepContext {
  const partition = { prefix: 'p00/', stable: [key], ephemeral: [] }
  return { model, choices: new Choices(prng(1)), partition, versions: { floor: 0 } }
}

function storedModel(): Model {
  const model = new Model()
  const value = Buffer.from('v1')
  model.replace(key, [{ value, contentType: 'text/plain', version: 5, expiry: undefined }])
  return model
}

function answer(status: number, body: string, headers: Record<string, string> = {}): RawResponse {
  return { status, headers, body: Buffer.from(body) }
}

const rightHeaders = {
  'content-type': 'text/plain',
  'content-length': '2',
  etag: '"5"',
  'x-content-type-options': 'nosniff',
  'content-security-policy': 'sandbox',
}

describe('the whole-server checker', () => {
  it('takes the right answer to a read', () => {
    const model = storedModel()
    getStep(contextWith(model), false, key).check(answer(200, 'v1', rightHeaders), moment)
    expect(model.certain(key)?.value.toString()).toBe('v1')
  })

  it('refuses other bytes, another version, a lost value and a lost header', () => {
    const wrong = [
      answer(200, 'v0', rightHeaders),
      answer(200, 'v1', { ...rightHeaders, etag: '"4"' }),
      answer(404, JSON.stringify({ status: 404, code: 'not_found' }), {
        'content-type': 'application/problem+json',
      }),
      answer(200, 'v1', { ...rightHeaders, 'content-security-policy': '' }),
    ]
    for (const response of wrong) {
      const model = storedModel()
      expect(() => getStep(contextWith(model), false, key).check(response, moment)).toThrow(
        Mismatch,
      )
    }
  })
})
