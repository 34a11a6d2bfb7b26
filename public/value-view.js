import { element } from './dom.js'
import { formatBytes, formatCount } from './format.js'

// Showing a stored value, which is bytes with a content type: pretty-printed JSON when it is
// JSON, text when it is text (or is valid UTF-8 without control characters, whatever its type
// says), the picture for common image types, and otherwise a hex dump of its first bytes.
// Long texts and dumps are cut: a 1 MiB value would make the page crawl.

const textShownMax = 100_000
const binaryShownSize = 1024
const imageShownSizeMax = 2 * 1024 * 1024
const imageTypes = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/svg+xml'])

/** @param {string} contentType */
export function isJsonType(contentType) {
  return /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(contentType)
}

/** @param {string} contentType */
function isTextType(contentType) {
  return (
    /^text\//i.test(contentType) ||
    isJsonType(contentType) ||
    /^application\/([\w.-]+\+)?(xml|javascript|x-www-form-urlencoded)\s*(;|$)/i.test(contentType)
  )
}

/**
 * The bytes as text, or null when they are not valid UTF-8.
 * @param {Uint8Array} bytes
 */
function decodeUtf8(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
  } catch {
    return null
  }
}

/**
 * What the editor starts from: the text, pretty-printed when it is JSON; null when the value
 * is not text (binary values are not edited here).
 * @param {Uint8Array} bytes
 * @param {string} contentType
 * @returns {string | null}
 */
export function editableText(bytes, contentType) {
  const text = decodeUtf8(bytes)
  if (text === null) return null
  if (isJsonType(contentType)) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2)
    } catch {
      return text
    }
  }
  return isTextType(contentType) || looksLikeText(text) ? text : null
}

/**
 * Text a person could read and edit: no control characters but tab, newline and return.
 * @param {string} text
 */
function looksLikeText(text) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)
}

/**
 * The elements that show the value, and a note on how it is shown.
 * @param {Uint8Array} bytes
 * @param {string} contentType
 * @returns {{ nodes: Node[], note: string }}
 */
export function viewOfValue(bytes, contentType) {
  const baseType = contentType.split(';')[0]?.trim().toLowerCase() ?? ''
  if (imageTypes.has(baseType) && bytes.byteLength <= imageShownSizeMax) {
    const image = element('img', {
      src: `data:${baseType};base64,${base64Of(bytes)}`,
      alt: `The stored ${baseType} image`,
      className: 'value-image',
    })
    return { nodes: [image], note: `Image, ${formatBytes(bytes.byteLength)}` }
  }
  const text = decodeUtf8(bytes)
  if (text !== null && isJsonType(contentType)) {
    try {
      return textView(JSON.stringify(JSON.parse(text), null, 2), 'JSON, pretty-printed', 'json')
    } catch {
      return textView(text, 'Not valid JSON, although its content type says so; shown as text')
    }
  }
  if (text !== null && isTextType(contentType)) return textView(text, 'Text')
  if (text !== null && looksLikeText(text)) {
    return textView(text, 'Shown as text: the bytes are valid UTF-8')
  }
  return hexView(bytes)
}

/**
 * @param {string} text
 * @param {string} note
 * @param {string} [kind]
 */
function textView(text, note, kind = 'text') {
  const cut = text.length > textShownMax
  const shown = cut ? text.slice(0, textShownMax) : text
  const pre = element('pre', { className: `value value-${kind}`, textContent: shown })
  pre.tabIndex = 0
  const suffix = cut
    ? `; showing the first ${formatCount(textShownMax)} of ${formatCount(text.length)} characters`
    : ''
  return { nodes: [pre], note: `${note}${suffix}` }
}

/** @param {Uint8Array} bytes */
function hexView(bytes) {
  const shown = bytes.subarray(0, binaryShownSize)
  const lines = []
  for (let offset = 0; offset < shown.length; offset += 16) {
    const row = [...shown.subarray(offset, offset + 16)]
    const hex = row.map((byte) => byte.toString(16).padStart(2, '0')).join(' ')
    const ascii = row.map((byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.'))
    lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${ascii.join('')}|`)
  }
  const pre = element('pre', { className: 'value value-hex', textContent: lines.join('\n') })
  pre.tabIndex = 0
  const cut = bytes.byteLength > binaryShownSize
  const note = cut
    ? `Binary, ${formatBytes(bytes.byteLength)}; showing the first ${formatBytes(binaryShownSize)}`
    : `Binary, ${formatBytes(bytes.byteLength)}`
  return { nodes: [pre], note }
}

/** @param {Uint8Array} bytes */
function base64Of(bytes) {
  let binary = ''
  // In slices: String.fromCharCode(...all) would overflow the argument limit for a large image.
  for (let offset = 0; offset < bytes.length; offset += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(offset, offset + 0x8000))
  }
  return btoa(binary)
}
