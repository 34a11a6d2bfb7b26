import { describe, expect, it } from 'vitest'
import {
  decodeMediaType,
  encodeMediaType,
  isMediaType,
  tagInline,
} from '../../../src/http/media-type.js'
import { inProcessApp } from '../../support/app.js'

// Media types against RFC 9110's grammar (§8.3.1): what may be stored, and what a stored tag
// may still send out as a Content-Type, whatever wrote it.

describe('isMediaType', () => {
  it('accepts type/subtype with token or quoted-string parameters', () => {
    for (const text of [
      'text/plain',
      'text/plain; charset=utf-8',
      'text/plain;charset="utf-8"',
      'application/vnd.a+json;v=1;;',
      'multipart/form-data; boundary="a b\\"c"',
      'text/plain;\tq="\u00e9"',
      "application/x-!#$%&'*+.^_`|~",
    ]) {
      expect(isMediaType(text), JSON.stringify(text)).toBe(true)
    }
  })

  it('refuses controls, missing parts, bare parameters and characters outside Latin-1', () => {
    for (const text of [
      '',
      '\u0001',
      'text/plain\u0000',
      'text/plain\r\nX: y',
      '\u007f',
      'text',
      'text/',
      '/plain',
      'text/pl ain',
      ' text/plain',
      'text/plain ',
      'text/plain; charset',
      'text/plain; charset=',
      'text/plain; charset="utf-8',
      'text/€',
      'text/plain; q="\u0100"',
      'text/plain; q="\\\u0001"',
    ]) {
      expect(isMediaType(text), JSON.stringify(text)).toBe(false)
    }
  })
})

describe('encodeMediaType and decodeMediaType', () => {
  it('refuses what is not a media type, and one longer than 255 bytes', () => {
    expect(encodeMediaType('text')).toBe('invalid')
    expect(encodeMediaType(`text/${'x'.repeat(251)}`)).toBe('too_long')
    expect(encodeMediaType(`text/${'x'.repeat(250)}`)).toMatchObject({ tag: tagInline })
  })

  it('sends application/octet-stream for a stored media type that is not one', () => {
    for (const stored of ['\u0001', 'text/€', 'text/plain\r\nX: y']) {
      const type = new TextEncoder().encode(stored)
      const value = Uint8Array.from([type.length, ...type, 0x76])
      const decoded = decodeMediaType(tagInline, value)
      expect(decoded.mediaType, JSON.stringify(stored)).toBe('application/octet-stream')
      expect([...decoded.body]).toEqual([0x76])
    }
  })

  it('serves an entry an older version stored with an invalid media type', async () => {
    const { app, store } = inProcessApp()
    const type = new TextEncoder().encode('\u0001')
    store.set('old', Uint8Array.from([type.length, ...type, 0x76]), { contentType: tagInline })
    for (const method of ['GET', 'HEAD']) {
      const response = await app.request('/v1/kv/old', { method })
      expect(response.status, method).toBe(200)
      expect(response.headers.get('content-type'), method).toBe('application/octet-stream')
      expect(await response.text()).toBe(method === 'GET' ? 'v' : '')
    }
  })
})
