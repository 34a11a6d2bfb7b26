import { byId } from './dom.js'

// Every request the UI makes goes through request(): same origin, never cached, and with the
// bearer token when the server wants one. The token is asked for when a request is refused
// with 401, kept in sessionStorage (so it lasts until the tab closes and never reaches another
// tab or the disk beyond the session), and sent only in the Authorization header: never in a
// URL, where it would end up in logs and history.

const tokenStorageKey = 'slabkv.token'

/** An answer the API gave with an error status, with what its problem+json body says. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code the stable code from the API (docs/api.md, "Errors"), or 'http_<status>'
   * @param {string} detail the API's message
   */
  constructor(status, code, detail) {
    super(`${status} ${code}: ${detail}`)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.detail = detail
  }
}

/** The request never got an answer (the server is down, or the network is). */
export class NetworkError extends Error {
  /** @param {unknown} cause */
  constructor(cause) {
    super(`Could not reach the server (${cause instanceof Error ? cause.message : cause})`)
    this.name = 'NetworkError'
  }
}

/**
 * @typedef {object} TokenState
 * @property {Promise<string | null> | undefined} prompt the question on screen, shared by every
 *   request refused while it is open, so the person is asked once, not once per request
 * @property {boolean} declined the person cancelled: requests fail with 401 without asking
 *   again (the poller would otherwise reopen the dialog every second) until askAgain()
 */

/** @type {TokenState} */
const token = { prompt: undefined, declined: false }

/** @type {Set<() => void>} */
const tokenListeners = new Set()

/**
 * Called whenever the token is set or declined, so the header can offer to sign in again.
 * @param {() => void} listener
 */
export function onTokenChange(listener) {
  tokenListeners.add(listener)
}

export function tokenDeclined() {
  return token.declined
}

/** Lets requests ask for the token again after the person cancelled the dialog. */
export function askAgain() {
  token.declined = false
  for (const listener of tokenListeners) listener()
}

/**
 * Fetches a same-origin path with the stored token. Answers with 401 open the token dialog
 * and retry with what was entered; the response is returned whatever its status.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function send(path, init = {}) {
  for (;;) {
    const stored = sessionStorage.getItem(tokenStorageKey)
    const headers = new Headers(init.headers)
    if (stored !== null) headers.set('Authorization', `Bearer ${stored}`)
    /** @type {Response} */
    let response
    try {
      response = await fetch(path, { ...init, headers, cache: 'no-store', redirect: 'error' })
    } catch (error) {
      throw new NetworkError(error)
    }
    if (response.status !== 401 || token.declined) return response
    // Another request may have been given a new token while this one was on its way.
    if (sessionStorage.getItem(tokenStorageKey) !== stored) continue
    token.prompt ??= askForToken(stored !== null).finally(() => {
      token.prompt = undefined
    })
    const entered = await token.prompt
    if (entered === null) return response
  }
}

/**
 * As send(), but an error status throws an ApiError carrying the API's code and message.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function request(path, init = {}) {
  const response = await send(path, init)
  if (response.ok || response.status === 304) return response
  throw await apiErrorOf(response)
}

/**
 * As request(), parsing a JSON answer.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<any>}
 */
export async function requestJson(path, init = {}) {
  const response = await request(path, init)
  return response.json()
}

/**
 * The path of one key: every reserved character percent-encoded, '/' included (docs/api.md: keys
 * may hold '/', sent as %2F).
 * @param {string} key
 */
export function keyPath(key) {
  return `/v1/kv/${encodeURIComponent(key)}`
}

/** @param {Response} response */
async function apiErrorOf(response) {
  const text = await response.text()
  let code = `http_${response.status}`
  let detail = text.trim() === '' ? response.statusText : text.slice(0, 500)
  try {
    const body = JSON.parse(text)
    if (typeof body.code === 'string') code = body.code
    if (typeof body.detail === 'string') detail = body.detail
    else if (typeof body.title === 'string') detail = body.title
  } catch {
    // Not problem+json (a proxy's error page, say): the raw text is the best message there is.
  }
  return new ApiError(response.status, code, detail)
}

/**
 * Opens the token dialog and resolves with what was entered (and stores it), or null when
 * the person cancels.
 * @param {boolean} refused the previous token was refused, which the dialog says
 * @returns {Promise<string | null>}
 */
function askForToken(refused) {
  const dialog = byId('token-dialog', HTMLDialogElement)
  const input = byId('token-input', HTMLInputElement)
  const message = byId('token-message', HTMLElement)
  message.textContent = refused
    ? 'The server refused that token. Enter the right one.'
    : 'This server requires a bearer token (the --token it was started with).'
  message.dataset.kind = refused ? 'error' : 'info'
  input.value = ''
  dialog.returnValue = ''
  dialog.showModal()
  input.focus()
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        const entered = input.value
        input.value = ''
        if (dialog.returnValue === 'save' && entered !== '') {
          sessionStorage.setItem(tokenStorageKey, entered)
          token.declined = false
          resolve(entered)
        } else {
          token.declined = true
          resolve(null)
        }
        for (const listener of tokenListeners) listener()
      },
      { once: true },
    )
  })
}
