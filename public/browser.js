import { ApiError, keyPath, request } from './api.js'
import { byId, clearResult, showResult } from './dom.js'
import { describeError, formatCount } from './format.js'
import { rowOf } from './key-rows.js'
import { createLiveList } from './live-list.js'

// Browsing keys: GET /v1/kv?prefix=&cursor=&limit=. The listing is a scan over the store's
// slots, not a sorted range (docs/api.md, "GET /v1/kv"): each answer carries an opaque cursor for the
// next and null after the last, and may hold fewer keys than asked for, even none, long before
// the end (a rare prefix in a store sized for a million entries). So one page on screen is as
// many answers as it takes to fill it or reach the end, and the way back is the list of
// cursors each page on screen started from. A key just written from this page is shown at the
// top of the page on screen when the scan has it elsewhere (a new key takes whichever slot is
// free, often on a later page): who just set a key expects to see it in the list. Once
// listed, the page follows the change feed from the listing's sequence (live-list.js).

/** A page on screen stops asking after this many answers, full or not, to bound its cost. */
const requestsPerPageMax = 32

/** @typedef {import('./key-rows.js').ListedKey} ListedKey */

/**
 * @param {{ onOpen: (key: string) => void }} options onOpen: a key was chosen in the table
 */
export function createBrowser({ onOpen }) {
  const form = byId('browse-form', HTMLFormElement)
  const prefixInput = byId('browse-prefix', HTMLInputElement)
  const limitSelect = byId('browse-limit', HTMLSelectElement)
  const rows = byId('browse-rows', HTMLTableSectionElement)
  const result = byId('browse-result', HTMLElement)
  const pageLabel = byId('browse-page', HTMLElement)
  const firstButton = byId('browse-first', HTMLButtonElement)
  const previousButton = byId('browse-previous', HTMLButtonElement)
  const nextButton = byId('browse-next', HTMLButtonElement)
  const refreshButton = byId('browse-refresh', HTMLButtonElement)
  const live = createLiveList({
    rows,
    result,
    status: byId('browse-live', HTMLElement),
    rowOf: (item) => rowOf(item, onOpen),
    relist: () => void load(pageIndex),
  })

  let prefix = ''
  let limit = limitSelect.value
  /** The cursor each page seen so far started from; '' for the first page. */
  let pageCursors = ['']
  let pageIndex = 0
  /** @type {string | null} */
  let nextCursor = null
  // Answers can arrive out of order (a slow page, then a quick new search); only the answer to
  // the latest request is shown.
  let latestRequest = 0
  let loaded = false

  /**
   * @param {number} index the page to show
   * @param {string} [written] a key just written, shown first when the page does not hold it
   */
  const load = async (index, written) => {
    const requestNumber = ++latestRequest
    const pageSize = Number(limit)
    /** @type {ListedKey[]} */
    const items = []
    /** @type {string | null} */
    let cursor = pageCursors[index] ?? ''
    /** The key just written is shown first, out of the scan's order (not one of the page's). */
    let pinned = false
    /**
     * The first answer's Slabkv-Sequence: every change up to it is in the page, and the later
     * answers' changes since are at worst repeated by the feed, which compares versions.
     * @type {number | undefined}
     */
    let sequence
    try {
      for (let requests = 0; requests < requestsPerPageMax && items.length < pageSize; requests++) {
        const query = new URLSearchParams({ prefix, limit: String(pageSize - items.length) })
        if (cursor !== '') query.set('cursor', cursor)
        const response = await request(`/v1/kv?${query}`)
        const answer = await response.json()
        if (requestNumber !== latestRequest) return
        const header = response.headers.get('Slabkv-Sequence')
        if (requests === 0 && header !== null && /^\d+$/.test(header)) sequence = Number(header)
        items.push(.../** @type {ListedKey[]} */ (answer.items))
        cursor = answer.cursor
        if (cursor === null) break
      }
      if (written?.startsWith(prefix) && !items.some((item) => item.key === written)) {
        const item = await listedKeyOf(written)
        if (requestNumber !== latestRequest) return
        if (item !== undefined) {
          items.unshift(item)
          pinned = true
        }
      }
    } catch (error) {
      if (requestNumber !== latestRequest) return
      showResult(result, 'error', [`Could not list keys: ${describeError(error)}`])
      return
    }
    pageIndex = index
    nextCursor = cursor
    if (nextCursor !== null) pageCursors[index + 1] = nextCursor
    render(items, written, pinned, sequence)
    loaded = true
  }

  /**
   * @param {ListedKey[]} items
   * @param {string | undefined} written the key just written, whose row is marked
   * @param {boolean} pinned the first item is that key, shown beside the page's own
   * @param {number | undefined} sequence the listing's, from which the feed follows it
   */
  const render = (items, written, pinned, sequence) => {
    /** @type {[ListedKey, HTMLTableRowElement][]} */
    const listed = items.map((item) => {
      const row = rowOf(item, onOpen)
      if (item.key === written) row.dataset.written = ''
      return [item, row]
    })
    rows.replaceChildren(...listed.map(([, row]) => row))
    live.follow(prefix, sequence, listed)
    const end = nextCursor === null
    const count = pinned ? items.length - 1 : items.length
    pageLabel.textContent =
      `Page ${pageIndex + 1}: ${formatCount(count)} key${count === 1 ? '' : 's'}` +
      (end ? ', the last page' : '') +
      (pinned ? ', and the key just set, first' : '')
    firstButton.disabled = pageIndex === 0
    previousButton.disabled = pageIndex === 0
    nextButton.disabled = end
    const prefixText = prefix === '' ? '' : ` starting with “${prefix}”`
    if (items.length > 0) clearResult(result)
    else if (end && pageIndex === 0) showResult(result, 'info', [`No keys${prefixText}.`])
    else if (end) showResult(result, 'info', [`No more keys${prefixText}.`])
    else showResult(result, 'info', ['No keys found yet; the next page looks further.'])
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    prefix = prefixInput.value
    limit = limitSelect.value
    pageCursors = ['']
    void load(0)
  })
  firstButton.addEventListener('click', () => void load(0))
  previousButton.addEventListener('click', () => void load(Math.max(0, pageIndex - 1)))
  nextButton.addEventListener('click', () => void load(pageIndex + 1))
  refreshButton.addEventListener('click', () => void load(pageIndex))

  return {
    /**
     * Shows the current page again, with what changed since; with `written`, a key just written
     * from this page, that key too.
     * @param {string} [written]
     */
    refresh: (written) => load(pageIndex, written),
    /** Loads the first page the first time the view opens. */
    loadOnce: () => (loaded ? Promise.resolve() : load(0)),
    /** The view is left: the list stops following the feed. */
    pause: live.pause,
    /** The view is back: the list follows the feed again from where it stopped. */
    resume: live.resume,
  }
}

/**
 * One key as the listing would describe it, from a HEAD request (which leaves its recency as it
 * is); undefined when it is gone.
 * @param {string} key
 * @returns {Promise<ListedKey | undefined>}
 */
async function listedKeyOf(key) {
  let response
  try {
    response = await request(keyPath(key), { method: 'HEAD' })
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return undefined
    throw error
  }
  const ttl = response.headers.get('Slabkv-Ttl')
  return {
    key,
    size: Number(response.headers.get('Content-Length')),
    contentType: response.headers.get('Content-Type') ?? 'application/octet-stream',
    version: Number(/\d+/.exec(response.headers.get('ETag') ?? '')?.[0]),
    ttl: ttl === null ? null : Number(ttl),
  }
}
