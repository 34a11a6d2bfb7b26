import { ApiError, askAgain, onTokenChange, tokenDeclined } from './api.js'
import { createBrowser } from './browser.js'
import { startDashboard } from './dashboard.js'
import { byId } from './dom.js'
import { describeError } from './format.js'
import { createInspector } from './inspector.js'
import { createKeyForm } from './key-form.js'

// Wiring only: the two views (the dashboard and the keys), which one the URL fragment names
// (#dashboard, #keys), and the connection line in the header. Each part lives in its module.

const views = ['dashboard', 'keys']

const inspector = createInspector({ onChange: () => void browser.refresh() })
const browser = createBrowser({ onOpen: (key) => void inspector.open(key) })
createKeyForm({
  open: inspector.open,
  // A key set from the form shows in the list at once, wherever the scan has it.
  onChange: (key, exists) => void browser.refresh(exists ? key : undefined),
})

const connection = byId('connection', HTMLElement)
const signIn = byId('sign-in', HTMLButtonElement)

/** @param {unknown} error the last poll's failure, or undefined when it succeeded */
function showConnection(error) {
  const needsToken = error instanceof ApiError && error.status === 401
  connection.dataset.kind = error === undefined ? 'ok' : 'error'
  connection.textContent =
    error === undefined ? 'Connected' : needsToken ? 'Token required' : describeError(error)
  signIn.hidden = !(needsToken && tokenDeclined())
}

signIn.addEventListener('click', askAgain)
onTokenChange(() => {
  signIn.hidden = !tokenDeclined()
})

function showView() {
  const wanted = location.hash.slice(1)
  const name = views.includes(wanted) ? wanted : 'dashboard'
  for (const view of views) {
    byId(`view-${view}`, HTMLElement).hidden = view !== name
    const link = byId(`nav-${view}`, HTMLAnchorElement)
    if (view === name) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  document.title = `slabkv · ${name === 'keys' ? 'Keys' : 'Dashboard'}`
  if (name === 'keys') void browser.loadOnce()
  followChanges()
}

// The keys view follows the change feed only while it is on screen: another view, or a tab in
// the background, holds no stream. A browser allows six connections to one server over
// HTTP/1.1, for all its tabs together, and each stream keeps one.
function followChanges() {
  if (location.hash === '#keys' && !document.hidden) {
    browser.resume()
    inspector.resume()
  } else {
    browser.pause()
    inspector.pause()
  }
}

window.addEventListener('hashchange', showView)
document.addEventListener('visibilitychange', followChanges)
showView()
startDashboard({ onPoll: showConnection })
