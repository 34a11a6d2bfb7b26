import type { Durability } from '../durability.js'
import { Store } from '../store/store.js'
import { logDurability } from './durability.js'
import { WalRing } from './ring.js'

// The one way a thread takes part in serving: attach to the shared buffer so that every mutation
// goes, in lock order, into the WAL ring (and never takes a sequence number the ring has no room
// for), and every acknowledgement waits for the durable sequence the writer thread publishes.
// The main thread does it once recovery is done; each handler thread does it at its start.

export interface LoggedStore {
  store: Store
  durability: Durability
}

export function attachLoggedStore(buffer: SharedArrayBuffer): LoggedStore {
  const ring = new WalRing(Store.attach(buffer).views)
  const store = Store.attach(buffer, {
    onMutation: (record) => ring.append(record),
    onUnlocked: () => ring.wakeWriterIfAppended(),
    logRoom: ring,
  })
  return { store, durability: logDurability(store.views) }
}
