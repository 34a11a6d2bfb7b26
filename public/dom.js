// Small DOM helpers. Everything the UI shows is built with textContent and element properties,
// never with innerHTML: keys and values come from whoever wrote them, and must never become
// markup. (The Content-Security-Policy would refuse an injected script anyway; this keeps an
// injected <img> or <form> out too.)

/**
 * The element with this id, checked to be of the expected type: a missing or renamed element
 * in index.html fails at start, with its name, rather than later as "undefined".
 * @template {Element} T
 * @param {string} id
 * @param {{ new (): T, name: string }} type
 * @returns {T}
 */
export function byId(id, type) {
  const element = document.getElementById(id)
  if (!(element instanceof type)) throw new Error(`#${id} is missing or is not a ${type.name}`)
  return element
}

/**
 * A new element with properties and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Partial<HTMLElementTagNameMap[K]> & { className?: string }} [properties]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function element(tag, properties = {}, children = []) {
  const created = document.createElement(tag)
  Object.assign(created, properties)
  created.append(...children)
  return created
}

/**
 * Shows a one-line outcome in a result area: `kind` picks its colour and whether screen readers
 * hear it at once ('error' is an alert; the rest are polite status messages).
 * @param {HTMLElement} area
 * @param {'ok' | 'error' | 'info'} kind
 * @param {(Node | string)[]} parts
 */
export function showResult(area, kind, parts) {
  area.replaceChildren(...parts)
  area.dataset.kind = kind
  area.setAttribute('role', kind === 'error' ? 'alert' : 'status')
  area.hidden = false
}

/** @param {HTMLElement} area */
export function clearResult(area) {
  area.replaceChildren()
  area.hidden = true
}

/**
 * A key set in monospace, so that spaces and look-alike characters stay visible.
 * @param {string} key
 */
export function keyLabel(key) {
  return element('code', { className: 'key', textContent: key })
}

/**
 * Asks to confirm a destructive action in the page's own modal dialog (window.confirm would
 * block the page, and cannot be styled or labelled). Resolves true when confirmed.
 * @param {string} question
 * @param {string} actionLabel the confirming button's text, a verb ("Delete")
 * @returns {Promise<boolean>}
 */
export function confirmAction(question, actionLabel) {
  const dialog = byId('confirm-dialog', HTMLDialogElement)
  byId('confirm-message', HTMLElement).textContent = question
  byId('confirm-accept', HTMLButtonElement).textContent = actionLabel
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'accept'), {
      once: true,
    })
  })
}
