import { element } from './dom.js'
import { formatBytes, formatDuration } from './format.js'

// One row of the key listing: built from what the listing says of a key, updated in place when
// the change feed reports a new version (in place, so a focused key keeps its focus and the row
// does not move under the pointer), and marked with what happened to it since it was listed.

/**
 * One key as the listing describes it.
 * @typedef {{ key: string, size: number, contentType: string, version: number, ttl: number | null }} ListedKey
 */

/**
 * What happened to a listed key since: 'set' a new version of a key the listing showed, 'new' a
 * key the page did not show, 'gone' deleted, expired, evicted or cleared (the row stays, struck
 * through, until the page is listed again).
 * @typedef {'set' | 'new' | 'gone'} RowMark
 */

/**
 * @param {ListedKey} item
 * @param {(key: string) => void} onOpen the key was chosen
 */
export function rowOf(item, onOpen) {
  const open = element('button', {
    type: 'button',
    className: 'link key',
    textContent: item.key,
    // Cut short with an ellipsis when the column is too narrow (keys.css): whole here.
    title: item.key,
  })
  open.addEventListener('click', () => onOpen(item.key))
  return element('tr', {}, [
    element('th', { scope: 'row', className: 'col-key' }, [open]),
    element('td', { className: 'num', textContent: formatBytes(item.size) }),
    element('td', { className: 'col-type' }, [
      element('span', { textContent: item.contentType, title: item.contentType }),
    ]),
    element('td', { className: 'num', textContent: ttlText(item.ttl) }),
    element('td', { className: 'num', textContent: String(item.version) }),
  ])
}

/**
 * Shows a new version of the row's key in place.
 * @param {HTMLTableRowElement} row a row made by rowOf
 * @param {ListedKey} item
 */
export function updateRow(row, item) {
  const [, size, type, ttl, version] = row.cells
  if (size !== undefined) size.textContent = formatBytes(item.size)
  const typeText = type?.firstElementChild
  if (typeText instanceof HTMLElement) {
    typeText.textContent = item.contentType
    typeText.title = item.contentType
  }
  if (ttl !== undefined) ttl.textContent = ttlText(item.ttl)
  if (version !== undefined) version.textContent = String(item.version)
}

/**
 * Marks the row, in colour (keys.css) and in words, for screen readers, on its key's button
 * (whose name stays the key).
 * @param {HTMLTableRowElement} row
 * @param {RowMark} mark
 * @param {string} words what happened, as a phrase: "deleted on the server"
 */
export function markRow(row, mark, words) {
  row.dataset.change = mark
  row.querySelector('button')?.setAttribute('aria-description', words)
}

/** @param {number | null} ttl */
function ttlText(ttl) {
  return ttl === null ? '—' : formatDuration(ttl)
}
