import { ApiError, keyPath, request } from './api.js'
import { byId, confirmAction, keyLabel, showResult } from './dom.js'
import { describeError, evictedByWrite } from './format.js'
import { isJsonType } from './value-view.js'

// The set / get / delete form. Set is PUT /v1/kv/{key} with the chosen content type, an
// optional ?ttl= and, for "only if absent", If-None-Match: *. Get shows the key in the
// inspector; delete is DELETE /v1/kv/{key}. Each outcome, or the API's error with its code
// and message, is shown under the buttons.

const contentTypeOfFormat = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json',
}

/**
 * @param {{ open: (key: string) => Promise<{ version: number } | { error: unknown }>,
 *   onChange: (key: string, exists: boolean) => void }} options open: shows a key in the
 *   inspector; onChange: this form wrote the key (exists) or deleted it
 */
export function createKeyForm({ open, onChange }) {
  const form = byId('key-form', HTMLFormElement)
  const keyInput = byId('key-input', HTMLInputElement)
  const valueInput = byId('value-input', HTMLTextAreaElement)
  const typeInput = byId('type-input', HTMLInputElement)
  const ttlInput = byId('ttl-input', HTMLInputElement)
  const absentInput = byId('absent-input', HTMLInputElement)
  const result = byId('key-result', HTMLElement)

  // Choosing Text or JSON sets the matching content type, which stays editable for any other.
  for (const radio of form.querySelectorAll('input[name="format"]')) {
    radio.addEventListener('change', () => {
      if (!(radio instanceof HTMLInputElement) || !radio.checked) return
      typeInput.value = radio.value === 'json' ? contentTypeOfFormat.json : contentTypeOfFormat.text
    })
  }

  /** The key, or undefined after showing why there is none. */
  const keyOrExplain = () => {
    if (keyInput.value !== '') return keyInput.value
    keyInput.reportValidity()
    return undefined
  }

  const set = async () => {
    const key = keyOrExplain()
    if (key === undefined) return
    const contentType = typeInput.value.trim() || 'application/octet-stream'
    const value = valueInput.value
    if (isJsonType(contentType)) {
      try {
        JSON.parse(value)
      } catch (error) {
        showResult(result, 'error', [`Not sent: the value is not valid JSON (${error}).`])
        return
      }
    }
    const ttl = ttlInput.value.trim()
    if (ttl !== '' && !(Number(ttl) > 0)) {
      showResult(result, 'error', ['Not sent: the TTL must be a positive number of seconds.'])
      return
    }
    /** @type {Record<string, string>} */
    const headers = { 'Content-Type': contentType }
    if (absentInput.checked) headers['If-None-Match'] = '*'
    const query = ttl === '' ? '' : `?${new URLSearchParams({ ttl })}`
    try {
      const response = await request(`${keyPath(key)}${query}`, {
        method: 'PUT',
        headers,
        body: value,
      })
      const { version } = await response.json()
      const created = response.status === 201
      const expiry = ttl === '' ? '' : `, expiring in ${ttl} s`
      showResult(result, 'ok', [
        created ? 'Created ' : 'Replaced ',
        keyLabel(key),
        `: version ${version}${expiry}.${evictedByWrite(response)}`,
      ])
      onChange(key, true)
    } catch (error) {
      const exists = absentInput.checked && error instanceof ApiError && error.status === 412
      showResult(result, 'error', [
        'Not set: ',
        exists ? 'the key already exists, and “only if absent” is on. ' : '',
        describeError(error),
      ])
    }
  }

  const get = async () => {
    const key = keyOrExplain()
    if (key === undefined) return
    const outcome = await open(key)
    if ('version' in outcome) {
      showResult(result, 'ok', ['Found ', keyLabel(key), ` at version ${outcome.version}.`])
    } else {
      showResult(result, 'error', ['Get ', keyLabel(key), `: ${describeError(outcome.error)}`])
    }
  }

  const remove = async () => {
    const key = keyOrExplain()
    if (key === undefined) return
    if (!(await confirmAction(`Delete “${key}”?`, 'Delete'))) return
    try {
      await request(keyPath(key), { method: 'DELETE' })
      showResult(result, 'ok', ['Deleted ', keyLabel(key), '.'])
      onChange(key, false)
    } catch (error) {
      showResult(result, 'error', ['Not deleted: ', describeError(error)])
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    void set()
  })
  byId('key-get', HTMLButtonElement).addEventListener('click', () => void get())
  byId('key-delete', HTMLButtonElement).addEventListener('click', () => void remove())
}
