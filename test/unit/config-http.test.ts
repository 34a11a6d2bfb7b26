import { describe, expect, it } from 'vitest'
import { helpText, resolveConfig } from '../../src/config.js'

// The HTTP options: tokens a client could never send or guess, and the limits and timeouts that
// bound what one connection can cost, each with a flag, a variable and a line in --help.

function refusal(flags: Record<string, string>): string {
  const result = resolveConfig(flags, {})
  expect(result.ok, JSON.stringify(flags)).toBe(false)
  return result.ok ? '' : result.message
}

describe('--token', () => {
  it('refuses a token with characters an Authorization header cannot carry as typed', () => {
    for (const token of [
      'ключ-0123456789abcdef',
      'tok€n-0123456789ab',
      'with space 0123456789',
      'tab\there-0123456789',
      'é-0123456789abcdef',
    ]) {
      expect(refusal({ token }), token).toMatch(/--token must be visible ASCII/)
    }
  })

  it('refuses a blank token anywhere', () => {
    expect(refusal({ token: ' ' })).toMatch(/--token/)
    expect(refusal({ token: '   ', host: '0.0.0.0' })).toMatch(/--token/)
  })

  it('refuses a token shorter than 16 characters off loopback, saying the minimum', () => {
    for (const token of ['x', 'fifteen-chars-x']) {
      const message = refusal({ token, host: '0.0.0.0' })
      expect(message).toMatch(/at least 16 characters/)
    }
    expect(resolveConfig({ token: 'sixteen-chars-xx', host: '0.0.0.0' }, {}).ok).toBe(true)
  })

  it('takes a short token on loopback, where only this machine can guess at it', () => {
    expect(resolveConfig({ token: 'x' }, {}).ok).toBe(true)
  })
})

describe('the limits and timeouts of the HTTP layer', () => {
  const options = [
    ['max-batch-read-size', 'SLABKV_MAX_BATCH_READ_SIZE', 'batchReadSizeMax', 16 * 1024 * 1024],
    ['max-json-depth', 'SLABKV_MAX_JSON_DEPTH', 'jsonDepthMax', 128],
    ['send-timeout-ms', 'SLABKV_SEND_TIMEOUT_MS', 'sendTimeoutMs', 30_000],
    ['max-pipelined-requests', 'SLABKV_MAX_PIPELINED_REQUESTS', 'pipelinedRequestCountMax', 512],
  ] as const

  it('has a default, a flag, an environment variable and a line in --help for each', () => {
    const defaults = resolveConfig({}, {})
    expect(defaults.ok).toBe(true)
    if (!defaults.ok) return
    for (const [flag, env, field, value] of options) {
      expect(defaults.config[field], flag).toBe(value)
      expect(resolveConfig({ [flag]: '7' }, {})).toMatchObject({ config: { [field]: 7 } })
      expect(resolveConfig({}, { [env]: '9' })).toMatchObject({ config: { [field]: 9 } })
      expect(helpText()).toContain(`--${flag}`)
      expect(helpText()).toContain(env)
    }
  })

  it('refuses a value size whose JSON answer could be longer than the longest string', () => {
    expect(resolveConfig({ 'max-value-size': '64MiB' }, {}).ok).toBe(true)
    for (const size of [String(64 * 1024 * 1024 + 1), '512MiB']) {
      expect(refusal({ 'max-value-size': size })).toMatch(
        /--max-value-size must be between 0 to 67108864/,
      )
    }
    expect(helpText()).toMatch(/--max-value-size .*at most 64MiB/)
  })

  it('refuses a JSON depth past what the server can serialize', () => {
    expect(resolveConfig({ 'max-json-depth': '1000' }, {}).ok).toBe(true)
    expect(refusal({ 'max-json-depth': '1001' })).toMatch(/--max-json-depth/)
  })

  it('takes --allowed-hosts as a comma-separated list of names, lowercased', () => {
    expect(resolveConfig({ 'allowed-hosts': 'KV.internal, other.example' }, {})).toMatchObject({
      config: { allowedHosts: ['kv.internal', 'other.example'] },
    })
    expect(resolveConfig({}, {})).toMatchObject({ config: { allowedHosts: [] } })
    expect(refusal({ 'allowed-hosts': 'bad host' })).toMatch(/--allowed-hosts/)
  })
})
