import { keyPath, send } from './api.js'
import { watchChanges } from './watch.js'

// The key on screen in the key view, followed on the change feed so that a change made
// elsewhere is shown as it happens. Its own feed (prefix: the key), not the list's: the key
// opened need not be under the list's prefix. It starts from 'now' rather than from a
// sequence, and once the feed is open, one HEAD compares the key's version with the one on
// screen: a change before that is seen by the HEAD, one after it comes on the feed, so none is
// missed, and no history is needed (a resume whose history is gone starts this way again).

/** @typedef {import('./watch.js').Change} Change */

/**
 * What happened to the key: a change from the feed, or `gone` when the HEAD found it missing
 * (which of delete, expire or evict removed it, the HEAD cannot tell).
 * @typedef {Change | { type: 'gone', key: string, version: null }} KeyChange
 */

/**
 * @param {{ key: string, version: number | null, onChange: (change: KeyChange) => void }} options
 *   version: the one on screen, null when the key was absent
 * @returns {{ close: () => void }}
 */
export function watchKey({ key, version, onChange }) {
  /** The newest version seen, so a change is told once whichever way it arrives first. */
  let newest = version ?? 0
  let closed = false
  /** @type {{ close: () => void } | undefined} */
  let feed

  const check = async () => {
    let response
    try {
      response = await send(keyPath(key), { method: 'HEAD' })
    } catch {
      return // The feed reconnects by itself; a change meanwhile still comes on it.
    }
    if (closed) return
    const now = Number(/^"(\d+)"$/.exec(response.headers.get('etag') ?? '')?.[1] ?? Number.NaN)
    if (response.status === 404 && version !== null && newest === version) {
      onChange({ type: 'gone', key, version: null })
    } else if (response.ok && now > newest) {
      newest = now
      onChange({ type: 'set', key, version: now })
    }
  }

  const start = () => {
    feed = watchChanges({
      prefix: key,
      since: 'now',
      onChange: (change) => {
        // The prefix also matches longer keys; a clear matches every key.
        if (closed || (change.key !== key && change.type !== 'clear')) return
        if (change.version <= newest) return
        newest = change.version
        onChange(change)
      },
      onState: () => {},
      onHistoryGone: () => {
        if (!closed) start()
      },
      onStart: () => void check(),
    })
  }
  start()

  return {
    close: () => {
      closed = true
      feed?.close()
    },
  }
}
