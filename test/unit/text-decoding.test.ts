import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

// A TextDecoder drops a leading U+FEFF unless told ignoreBOM: a key "\uFEFFabc" decoded that way
// becomes "abc", and a log record replays onto another key. Keys and values are bytes that must
// come back exactly, so every decoder in the product keeps the BOM. This test reads the sources,
// so a new decoder cannot forget it.

const roots = ['src', 'workers', 'public']

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return /\.(ts|js)$/.test(entry.name) ? [path] : []
  })
}

describe('text decoding in the product', () => {
  it('keeps a leading byte order mark wherever bytes become a string', () => {
    const decoders: string[] = []
    const offenders: string[] = []
    for (const file of roots.flatMap(sourceFiles)) {
      const text = readFileSync(file, 'utf8')
      for (const match of text.matchAll(/new TextDecoder\([^)]*\)/g)) {
        decoders.push(`${file}: ${match[0]}`)
        if (!/ignoreBOM:\s*true/.test(match[0])) offenders.push(`${file}: ${match[0]}`)
      }
    }
    // The scan must see the decoders it guards (keys, log records, values, media types).
    expect(decoders.length).toBeGreaterThanOrEqual(4)
    expect(offenders).toEqual([])
  })

  it('is right about what a decoder without ignoreBOM does', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x61])
    expect(new TextDecoder().decode(bom)).toBe('a')
    expect(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bom)).toBe('\uFEFFa')
  })
})
