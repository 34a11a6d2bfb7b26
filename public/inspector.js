import { ApiError, keyPath, request, send } from './api.js'
import { byId, clearResult, confirmAction, element, keyLabel, showResult } from './dom.js'
import { describeError, evictedByWrite, formatBytes, formatDuration } from './format.js'
import { watchKey } from './key-watch.js'
import { editableText, isJsonType, viewOfValue } from './value-view.js'

// One key at a time: its value and metadata, editing with compare-and-set, deleting.
// Every write names the version it was based on (If-Match: "n", the ETag of the GET), so a
// change someone else made in between is never overwritten silently: the server answers 412,
// and the conflict is shown with the choice to overwrite or to load their version. The edit is
// kept on screen meanwhile. While a key is on screen, a change made to it elsewhere is shown
// as it happens (key-watch.js), above the value or the edit, which it never replaces.

/**
 * The key on screen, as the last GET returned it.
 * @typedef {{ key: string, version: number, contentType: string, bytes: Uint8Array, ttl: number | null }} Shown
 */

/** @param {string | null} etag `"n"` */
function versionOf(etag) {
  const match = /^(?:W\/)?"(\d+)"$/.exec(etag ?? '')
  return match === null ? Number.NaN : Number(match[1])
}

/**
 * @param {{ onChange: () => void }} options onChange: this view wrote or deleted a key
 */
export function createInspector({ onChange }) {
  const panel = byId('inspector', HTMLElement)
  const title = byId('inspector-title', HTMLElement)
  const keyName = byId('inspector-key', HTMLElement)
  const meta = byId('inspector-meta', HTMLElement)
  const result = byId('inspector-result', HTMLElement)
  const view = byId('inspector-view', HTMLElement)
  const note = byId('inspector-note', HTMLElement)
  const value = byId('inspector-value', HTMLElement)
  const editButton = byId('inspector-edit', HTMLButtonElement)
  const form = byId('editor-form', HTMLFormElement)
  const textarea = byId('editor-value', HTMLTextAreaElement)
  const typeInput = byId('editor-type', HTMLInputElement)
  const ttlInput = byId('editor-ttl', HTMLInputElement)
  const baseVersion = byId('editor-version', HTMLElement)
  const conflict = byId('editor-conflict', HTMLElement)
  const conflictMessage = byId('editor-conflict-message', HTMLElement)
  const changed = byId('inspector-changed', HTMLElement)

  /** @type {Shown | undefined} */
  let shown
  /** What a conflicting write found: the version now there, or null if the key is gone. */
  let theirs = /** @type {number | null} */ (null)
  /** Where focus was when the panel opened, to return it there on close (keyboard users). */
  let opener = /** @type {HTMLElement | null} */ (null)
  // Two keys opened in quick succession can answer out of order; only the last one is shown.
  let latestOpen = 0
  /** Counts the shown key's TTL down, once a second, while it is on screen. */
  let ttlTimer = /** @type {ReturnType<typeof setInterval> | undefined} */ (undefined)
  const stopTtlCountdown = () => {
    clearInterval(ttlTimer)
    ttlTimer = undefined
  }
  /** @type {{ close: () => void } | undefined} */
  let keyFeed
  /** The view is not on screen: a key loaded meanwhile is followed when it comes back. */
  let away = false
  /** The key on screen, or its absence (null), followed on the change feed from now. */
  const follow = (/** @type {string} */ key, /** @type {number | null} */ version) => {
    keyFeed?.close()
    keyFeed = away ? undefined : watchKey({ key, version, onChange: showChange })
  }
  const unfollow = () => {
    keyFeed?.close()
    keyFeed = undefined
    changed.hidden = true
  }

  /** @param {import('./key-watch.js').KeyChange} change */
  const showChange = (change) => {
    const editing = !form.hidden
    const version = change.version === null ? '' : ` (version ${change.version})`
    const what = {
      set: `${shown === undefined ? 'Set' : 'Changed'} on the server: version ${change.version}.`,
      delete: `Deleted on the server${version}.`,
      expire: `Expired on the server${version}.`,
      evict: `Evicted on the server to make room${version}.`,
      clear: `Cleared on the server, with every other key${version}.`,
      gone: 'Gone from the server: deleted, expired or evicted.',
    }[change.type]
    // The edit stays as typed: its save is conditional on the version it started from.
    const next = editing
      ? ' Your edit is kept; saving it will show the conflict first.'
      : change.type === 'set'
        ? ' Reload to see it.'
        : ''
    changed.textContent = what + next
    changed.hidden = false
  }

  /**
   * Loads and shows the key. Resolves with the error when it could not (404 included), which
   * is also shown in the panel.
   * @param {string} key
   * @returns {Promise<{ version: number } | { error: unknown }>}
   */
  const open = async (key) => {
    if (panel.hidden && document.activeElement instanceof HTMLElement) {
      opener = document.activeElement
    }
    panel.hidden = false
    keyName.textContent = key
    closeEditor()
    clearResult(result)
    unfollow()
    const openNumber = ++latestOpen
    try {
      const response = await request(keyPath(key))
      const entry = {
        key,
        version: versionOf(response.headers.get('etag')),
        contentType: response.headers.get('content-type') ?? 'application/octet-stream',
        bytes: new Uint8Array(await response.arrayBuffer()),
        ttl: response.headers.has('slabkv-ttl') ? Number(response.headers.get('slabkv-ttl')) : null,
      }
      if (openNumber !== latestOpen) return { version: entry.version }
      shown = entry
      render(shown)
      follow(key, shown.version)
      return { version: shown.version }
    } catch (error) {
      if (openNumber !== latestOpen) return { error }
      shown = undefined
      stopTtlCountdown()
      view.hidden = true
      meta.replaceChildren()
      showResult(result, 'error', [describeError(error)])
      // An absent key is followed too: the view says when it is set.
      if (error instanceof ApiError && error.status === 404) follow(key, null)
      return { error }
    } finally {
      title.focus()
    }
  }

  const render = (/** @type {Shown} */ entry) => {
    stopTtlCountdown()
    const ttlLeft = element('dd', {
      textContent: entry.ttl === null ? 'none' : formatDuration(entry.ttl),
    })
    if (entry.ttl !== null) {
      // From the server's figure at load, on the page's monotonic clock; the server alone
      // decides when the key expires, so at zero the view says so rather than guessing beyond.
      const deadline = performance.now() + entry.ttl * 1000
      ttlTimer = setInterval(() => {
        const left = (deadline - performance.now()) / 1000
        ttlLeft.textContent = left > 0 ? formatDuration(left) : 'expired (reload to check)'
        if (left <= 0) stopTtlCountdown()
      }, 1000)
    }
    meta.replaceChildren(
      ...[
        ['Content type', entry.contentType],
        ['Size', formatBytes(entry.bytes.byteLength)],
        ['Version', String(entry.version)],
      ].flatMap(([term, description]) => [
        element('dt', { textContent: term }),
        element('dd', { textContent: description }),
      ]),
      element('dt', { textContent: 'TTL left' }),
      ttlLeft,
    )
    const { nodes, note: how } = viewOfValue(entry.bytes, entry.contentType)
    note.textContent = how
    value.replaceChildren(...nodes)
    const editable = editableText(entry.bytes, entry.contentType) !== null
    editButton.disabled = !editable
    editButton.title = editable ? '' : 'Binary values cannot be edited here'
    view.hidden = false
  }

  const startEditing = () => {
    if (shown === undefined) return
    textarea.value = editableText(shown.bytes, shown.contentType) ?? ''
    typeInput.value = shown.contentType
    ttlInput.value = shown.ttl === null ? '' : String(Math.ceil(shown.ttl))
    baseVersion.textContent = String(shown.version)
    conflict.hidden = true
    clearResult(result)
    view.hidden = true
    form.hidden = false
    textarea.focus()
  }

  function closeEditor() {
    form.hidden = true
    conflict.hidden = true
  }

  /**
   * Writes the edit on condition: `{ ifMatch }` the version it is based on, or `{ ifAbsent }`
   * when the key was deleted meanwhile and the person chose to write theirs back.
   * @param {{ ifMatch: number } | { ifAbsent: true }} condition
   */
  const save = async (condition) => {
    if (shown === undefined) return
    const { key } = shown
    const contentType = typeInput.value.trim() || 'application/octet-stream'
    if (isJsonType(contentType)) {
      try {
        JSON.parse(textarea.value)
      } catch (error) {
        showResult(result, 'error', [`Not saved: the value is not valid JSON (${error}).`])
        return
      }
    }
    const ttl = ttlInput.value.trim()
    if (ttl !== '' && !(Number(ttl) > 0)) {
      showResult(result, 'error', ['Not saved: the TTL must be a positive number of seconds.'])
      return
    }
    /** @type {Record<string, string>} */
    const headers = { 'Content-Type': contentType }
    if ('ifMatch' in condition) headers['If-Match'] = `"${condition.ifMatch}"`
    else headers['If-None-Match'] = '*'
    const query = ttl === '' ? '' : `?${new URLSearchParams({ ttl })}`
    try {
      const response = await request(`${keyPath(key)}${query}`, {
        method: 'PUT',
        headers,
        body: textarea.value,
      })
      const { version } = await response.json()
      onChange()
      await open(key)
      showResult(result, 'ok', [
        'Saved ',
        keyLabel(key),
        `: now at version ${version}.${evictedByWrite(response)}`,
      ])
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) await showConflict(key)
      else showResult(result, 'error', [`Not saved: ${describeError(error)}`])
    }
  }

  const showConflict = async (/** @type {string} */ key) => {
    const head = await send(keyPath(key), { method: 'HEAD' })
    theirs = head.ok ? versionOf(head.headers.get('etag')) : null
    const mine = baseVersion.textContent
    conflictMessage.replaceChildren(
      'Not saved: someone else ',
      theirs === null ? 'deleted ' : 'changed ',
      keyLabel(key),
      theirs === null
        ? ` after you opened version ${mine}.`
        : ` after you opened it: you edited version ${mine}, it is now at version ${theirs}.`,
      ' Your edit is still here.',
    )
    conflict.hidden = false
    conflict.focus()
  }

  const remove = async () => {
    if (shown === undefined) return
    const { key, version } = shown
    if (!(await confirmAction(`Delete “${key}” (version ${version})?`, 'Delete'))) return
    try {
      await request(keyPath(key), { method: 'DELETE', headers: { 'If-Match': `"${version}"` } })
      shown = undefined
      view.hidden = true
      meta.replaceChildren()
      unfollow()
      follow(key, null)
      showResult(result, 'ok', ['Deleted ', keyLabel(key), '.'])
      onChange()
    } catch (error) {
      const changed = error instanceof ApiError && error.status === 412
      showResult(result, 'error', [
        changed
          ? `Not deleted: it changed since you loaded version ${version}. Reload to see it.`
          : `Not deleted: ${describeError(error)}`,
      ])
    }
  }

  editButton.addEventListener('click', startEditing)
  // Reload works after a failed load too (the key may be back), so it goes by the key's name.
  byId('inspector-reload', HTMLButtonElement).addEventListener('click', () => {
    if (keyName.textContent !== null) void open(keyName.textContent)
  })
  byId('inspector-delete', HTMLButtonElement).addEventListener('click', () => void remove())
  byId('inspector-close', HTMLButtonElement).addEventListener('click', () => {
    panel.hidden = true
    shown = undefined
    stopTtlCountdown()
    unfollow()
    if (opener?.isConnected) opener.focus()
  })
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    if (shown !== undefined) void save({ ifMatch: shown.version })
  })
  byId('editor-overwrite', HTMLButtonElement).addEventListener('click', () => {
    void save(theirs === null ? { ifAbsent: true } : { ifMatch: theirs })
  })
  byId('editor-discard', HTMLButtonElement).addEventListener('click', () => {
    if (keyName.textContent !== null) void open(keyName.textContent)
  })
  byId('editor-cancel', HTMLButtonElement).addEventListener('click', () => {
    closeEditor()
    if (shown !== undefined) view.hidden = false
  })

  return {
    open,
    /** The view is left: the key on screen is no longer followed. */
    pause: () => {
      away = true
      keyFeed?.close()
      keyFeed = undefined
    },
    /** The view is back: the key is followed again, and a change while away is shown. */
    resume: () => {
      away = false
      if (panel.hidden || keyFeed !== undefined || keyName.textContent === null) return
      follow(keyName.textContent, shown?.version ?? null)
    },
  }
}
