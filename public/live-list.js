import { clearResult, showResult } from './dom.js'
import { formatCount } from './format.js'
import { markRow, updateRow } from './key-rows.js'
import { watchChanges } from './watch.js'

// The key listing kept live: after each listing, the change feed from the listing's
// Slabkv-Sequence, under the same prefix, so no change between the listing and the feed is
// missed (docs/api.md, "GET /v1/watch"). The feed may repeat what the listing already shows: a
// change no newer than the version on screen is left alone. A changed row is marked, not
// moved or removed: a key deleted under the person's pointer stays, struck through, until the
// page is listed again. What the page holds is what it shows: the rows listed, at most
// `addedMax` keys the feed added, and a count of the rest.

/** @typedef {import('./key-rows.js').ListedKey} ListedKey */
/** @typedef {import('./watch.js').Change} Change */
/** @typedef {import('./watch.js').FeedState} FeedState */

/** Keys the feed may add to one page on screen; changes to more are counted, not shown. */
const addedMax = 100

/** What a change that removes a key is called on screen. */
const goneWords = {
  delete: 'deleted on the server',
  expire: 'expired',
  evict: 'evicted to make room',
  clear: 'cleared with the whole store',
}

/**
 * @param {{ rows: HTMLTableSectionElement, result: HTMLElement, status: HTMLElement,
 *   rowOf: (item: ListedKey) => HTMLTableRowElement, relist: () => void }} options
 *   status: where the feed's state shows; rowOf: a row for a key the feed adds; relist: list
 *   the page again (the feed's history is gone), which calls follow() again
 */
export function createLiveList({ rows, result, status, rowOf, relist }) {
  /** The rows on screen by key, with the version each shows. */
  let shown = new Map(/** @type {[string, { row: HTMLTableRowElement, version: number }][]} */ ([]))
  let prefix = ''
  let added = 0
  let notShown = 0
  /** @type {ReturnType<typeof watchChanges> | undefined} */
  let feed
  /** The position to resume from when the view comes back, while it is away. */
  let pausedAt = /** @type {number | undefined} */ (undefined)
  /** Feeds whose history was gone on arrival, in a row: each waits longer to list again. */
  let goneInARow = 0
  let relistTimer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined)
  /** The feed's history was gone and the page is to be listed again: done on resume if away. */
  let relistPending = false
  /** The view is not on screen: no feed is open, whatever finishes meanwhile. */
  let away = false

  /** @param {FeedState} state @param {string} why */
  const showState = (state, why) => {
    if (state === 'live') goneInARow = 0
    status.hidden = false
    status.dataset.state = state
    status.textContent = {
      connecting: 'Connecting…',
      live: 'Live',
      reconnecting: 'Reconnecting…',
      off: 'Not live',
    }[state]
    status.title =
      state === 'live'
        ? 'Changes on the server show in the list as they happen'
        : why === ''
          ? ''
          : `The change feed: ${why}`
  }

  /** @param {Change} change */
  const apply = (change) => {
    if (change.type === 'clear') {
      for (const entry of shown.values()) {
        markRow(entry.row, 'gone', goneWords.clear)
        entry.version = change.version
      }
      notShown = 0
      showNotShown()
      return
    }
    if (change.key === null || !change.key.startsWith(prefix)) return
    const entry = shown.get(change.key)
    if (entry !== undefined && change.version <= entry.version) return
    if (change.type !== 'set') {
      if (entry === undefined) return
      entry.version = change.version
      markRow(entry.row, 'gone', goneWords[change.type])
      return
    }
    /** @type {ListedKey} */
    const item = {
      key: change.key,
      version: change.version,
      size: change.size ?? 0,
      contentType: change.contentType ?? 'application/octet-stream',
      // From the server's clock: a listed TTL is as of the listing anyway, not counted down.
      ttl:
        typeof change.expiresAt === 'number'
          ? Math.max(0, (change.expiresAt - Date.now()) / 1000)
          : null,
    }
    if (entry !== undefined) {
      entry.version = change.version
      updateRow(entry.row, item)
      markRow(
        entry.row,
        entry.row.dataset.change === 'new' ? 'new' : 'set',
        `set on the server at version ${change.version}`,
      )
      return
    }
    if (added >= addedMax) {
      notShown++
      showNotShown()
      return
    }
    added++
    const row = rowOf(item)
    markRow(row, 'new', `new on the server at version ${change.version}`)
    rows.prepend(row)
    shown.set(change.key, { row, version: change.version })
    // The page may have said it had no keys.
    if (notShown === 0) clearResult(result)
  }

  const showNotShown = () => {
    if (notShown === 0) return
    const keys = `${formatCount(notShown)} more key${notShown === 1 ? '' : 's'}`
    showResult(result, 'info', [
      `${keys} changed on the server than the page shows: Refresh to list them.`,
    ])
  }

  /** @param {number | 'now'} since */
  const start = (since) => {
    feed = watchChanges({
      prefix,
      since,
      onChange: apply,
      onState: showState,
      onHistoryGone: () => {
        feed = undefined
        showState('reconnecting', 'its history since this listing is gone: listing again')
        // At once the first time; a server whose history is always too short for the
        // listing's sequence would otherwise be listed and refused in a loop.
        clearTimeout(relistTimer)
        relistPending = true
        relistTimer = setTimeout(relist, Math.min(1000 * (2 ** goneInARow++ - 1), 30_000))
      },
    })
  }

  return {
    /**
     * Follows the changes to the page just listed.
     * @param {string} listedPrefix
     * @param {number | undefined} sequence the listing's Slabkv-Sequence; undefined on a server
     *   without the feed, which then shows no state
     * @param {[ListedKey, HTMLTableRowElement][]} listed the rows on screen
     */
    follow: (listedPrefix, sequence, listed) => {
      feed?.close()
      feed = undefined
      clearTimeout(relistTimer)
      relistPending = false
      pausedAt = undefined
      prefix = listedPrefix
      shown = new Map(listed.map(([item, row]) => [item.key, { row, version: item.version }]))
      added = 0
      notShown = 0
      if (sequence === undefined) {
        status.hidden = true
        return
      }
      // A listing that finished after the view was left is followed when it comes back.
      if (away) pausedAt = sequence
      else start(sequence)
    },
    /** The view is left: the feed closes, and remembers where it was. */
    pause: () => {
      away = true
      clearTimeout(relistTimer)
      if (feed === undefined) return
      pausedAt = feed.position()
      feed.close()
      feed = undefined
    },
    /** The view is back: the feed resumes where it was (or lists again if that is gone). */
    resume: () => {
      away = false
      if (relistPending) relist()
      if (pausedAt === undefined || feed !== undefined) return
      const since = pausedAt
      pausedAt = undefined
      start(since)
    },
  }
}
