// Keys that break clients which build URLs or command lines carelessly: dot segments, percent
// signs and what looks like an escape, URL delimiters, quotes, control characters and NUL,
// byte-order marks, Unicode line separators, combining marks, astral characters, and keys at
// the size limit in bytes. Every client of the project's own (the CLI, slabkv/client) must round
// trip each one.

export function awkwardKeys(keySizeMax: number): string[] {
  const atLimit = (tail: string) => 'k'.repeat(keySizeMax - Buffer.byteLength(tail)) + tail
  return [
    '.',
    '..',
    '...',
    '../a',
    '%2E',
    '%2e%2E',
    '/',
    'a/../b',
    '%',
    '%41',
    '?',
    '#',
    '&=+',
    ' a b ',
    "!'()*",
    '\\',
    '\ufeff',
    '\ufeffbom',
    '\u0000',
    'a\u0000b',
    '\u0001',
    '\t',
    '\r\n',
    '\u007f',
    '\u0085',
    '\u2028',
    'e\u0301',
    '\ufffe',
    '😀',
    '\u{10ffff}',
    atLimit(''),
    atLimit('😀'),
  ]
}
