// Entity tags and the conditions built on them (RFC 9110 §8.8.3, §13.1). A value's entity tag is
// its version in quotes, "n", written as the decimal the store counts in; any other tag a client
// sends is well-formed but names no version of ours, so it matches nothing.

/** One entity tag of a list: W/ for weak, and the opaque text between the quotes. */
export interface EntityTag {
  weak: boolean
  opaque: string
}

export function etagOf(version: number): string {
  return `"${version}"`
}

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, where etagc is "!", "#" to "~", or obs-text.
const entityTagPattern = /^(W\/)?"([\x21\x23-\x7E\x80-\xFF]*)"$/

/**
 * The entity tags an If-Match or If-None-Match header lists, 'any' for *, or undefined when the
 * header is not a list of entity tags. Empty list elements are skipped, as RFC 9110 §5.6.1 asks.
 */
export function parseEtags(header: string): EntityTag[] | 'any' | undefined {
  if (header.trim() === '*') return 'any'
  const tags: EntityTag[] = []
  for (const part of header.split(',')) {
    const element = part.trim()
    if (element === '') continue
    const match = entityTagPattern.exec(element)
    if (match === null) return undefined
    tags.push({ weak: match[1] !== undefined, opaque: match[2]! })
  }
  return tags.length === 0 ? undefined : tags
}

/** The version an opaque tag names: only the canonical decimal of a version does. */
function versionOf(opaque: string): number | undefined {
  if (!/^(?:0|[1-9]\d{0,15})$/.test(opaque)) return undefined
  const version = Number(opaque)
  return Number.isSafeInteger(version) ? version : undefined
}

/**
 * The versions the listed tags match. If-Match compares strongly (§13.1.1): a weak tag matches
 * nothing. If-None-Match compares weakly (§13.1.2): W/"n" matches version n too.
 */
export function versionsOf(tags: EntityTag[], comparison: 'strong' | 'weak'): number[] {
  const versions: number[] = []
  for (const tag of tags) {
    if (tag.weak && comparison === 'strong') continue
    const version = versionOf(tag.opaque)
    if (version !== undefined) versions.push(version)
  }
  return versions
}
