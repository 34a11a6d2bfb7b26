import assert from 'node:assert/strict'

// The clients' history of their own keys, across kills and restarts, and the check of what a
// restarted server holds against it. Each key has one owner, which sends one operation at a
// time, so a key's history is a plain sequence: acknowledged operations, then at most one
// operation whose outcome is unknown (it was in flight when the server was killed, or its
// connection failed). After a restart a key may hold exactly one of two states:
//
//   in flight     allowed states
//   none          the last acknowledged state
//   PUT v         the last acknowledged state, or v
//   DELETE        the last acknowledged state, or absent
//
// Anything else is a finding. A value this key was sent at some earlier point, or absent where a
// value was acknowledged, is "lost": a later acknowledged write is missing. A value this key was
// never sent is a "phantom". Once checked, what the server holds becomes the key's acknowledged
// state: a recovered in-flight write is now durable, and a finding is counted once, not again in
// every later cycle.

/** A key's contents: its value, or null when the key is absent. */
export type KeyState = string | null

export type Op = { kind: 'put'; value: string } | { kind: 'delete' }

export interface Finding {
  kind: 'lost' | 'phantom'
  key: string
  cycle: number
  acked: KeyState
  inFlight: Op | undefined
  observed: KeyState
}

interface KeyHistory {
  acked: KeyState
  inFlight: Op | undefined
  /** Every value ever sent to this key, acknowledged or not. */
  sent: Set<string>
}

export class History {
  readonly #keys = new Map<string, KeyHistory>()
  putAckCount = 0
  deleteAckCount = 0

  keys(): string[] {
    return [...this.#keys.keys()]
  }

  /** Called right before the request goes out. */
  begin(key: string, op: Op): void {
    let history = this.#keys.get(key)
    if (history === undefined) {
      history = { acked: null, inFlight: undefined, sent: new Set() }
      this.#keys.set(key, history)
    }
    // One owner, one operation at a time: a second unknown outcome would blur the check.
    assert.equal(history.inFlight, undefined, `${key} already has an operation in flight`)
    if (op.kind === 'put') history.sent.add(op.value)
    history.inFlight = op
  }

  /**
   * Records the answer to the key's operation in flight. Returns false for a status that is no
   * acknowledgement; the operation then stays in flight, its outcome unknown.
   */
  answer(key: string, status: number): boolean {
    const history = this.#keys.get(key)
    assert(history?.inFlight !== undefined, `${key} has no operation in flight`)
    const op = history.inFlight
    if (op.kind === 'put') {
      if (status !== 200 && status !== 201) return false
      history.acked = op.value
      this.putAckCount++
    } else {
      // 404 is an acknowledged "absent" as much as 204 is.
      if (status !== 204 && status !== 404) return false
      history.acked = null
      this.deleteAckCount++
    }
    history.inFlight = undefined
    return true
  }

  /** How many keys have an operation whose outcome is unknown. */
  inFlightCount(): number {
    let count = 0
    for (const history of this.#keys.values()) if (history.inFlight !== undefined) count++
    return count
  }

  /** Checks what a restarted server holds (every key in keys()), then adopts it. */
  check(cycle: number, observedByKey: Map<string, KeyState>): Finding[] {
    const findings: Finding[] = []
    for (const [key, history] of this.#keys) {
      assert(observedByKey.has(key), `${key} was not read back`)
      const observed = observedByKey.get(key) ?? null
      const { acked, inFlight } = history
      const allowed: KeyState[] = [acked]
      if (inFlight !== undefined) allowed.push(inFlight.kind === 'put' ? inFlight.value : null)
      if (!allowed.includes(observed)) {
        const kind = observed === null || history.sent.has(observed) ? 'lost' : 'phantom'
        findings.push({ kind, key, cycle, acked, inFlight, observed })
      }
      history.acked = observed
      history.inFlight = undefined
    }
    return findings
  }
}

export function describeFinding(finding: Finding): string {
  const show = (state: KeyState) => (state === null ? 'absent' : JSON.stringify(state))
  const { inFlight } = finding
  const pending =
    inFlight === undefined
      ? 'nothing in flight'
      : `in flight ${inFlight.kind === 'put' ? `PUT ${show(inFlight.value)}` : 'DELETE'}`
  return (
    `${finding.kind} ${finding.key} after kill ${finding.cycle}: acknowledged ${show(finding.acked)}, ` +
    `${pending}, read back ${show(finding.observed)}`
  )
}
