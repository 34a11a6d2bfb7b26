import type { ErrorCode } from '../errors.js'

// What the client throws (docs/client.md, "Errors"). Three kinds, told apart with instanceof:
// the server answered with an error (SlabkvError, with the problem's stable `code`); the server
// could not be reached or the connection broke (SlabkvConnectionError: whether a write was
// applied is then unknown); an answer that is not what the API promises (SlabkvProtocolError).
// An aborted call rejects with its signal's reason, as fetch does.

/** The problem+json body of an error answer (RFC 9457; docs/api.md, "Errors"). */
export interface Problem {
  type?: string
  title?: string
  status?: number
  /** Stable: match on it, not on title or detail. */
  code?: string
  detail?: string
  /** The op of a batch the error is about. */
  index?: number
  [extension: string]: unknown
}

/** The codes docs/api.md lists; a newer server may send others. */
export type SlabkvErrorCode = ErrorCode | (string & {})

/** The server answered with an error status. */
export class SlabkvError extends Error {
  override name = 'SlabkvError'
  /** The HTTP status. */
  readonly status: number
  /** The problem's code, or undefined when the answer was not problem+json (a proxy's page). */
  readonly code: SlabkvErrorCode | undefined
  /** What happened in this request, as the server put it. */
  readonly detail: string | undefined
  /** The whole problem body, extensions included (`index`, `oldestSequence`...). */
  readonly problem: Problem | undefined

  /** `text` is the answer's body, for the message when it is not problem+json. */
  constructor(status: number, problem: Problem | undefined, text = '') {
    super(messageOf(status, problem, text))
    this.status = status
    this.problem = problem
    this.code = problem?.code
    this.detail = problem?.detail
  }
}

function messageOf(status: number, problem: Problem | undefined, text: string): string {
  if (problem === undefined) {
    const shown = text.trim().slice(0, 200)
    return `the server answered ${status}${shown === '' ? '' : `: ${shown}`}`
  }
  const what = problem.detail ?? problem.title ?? 'no reason given'
  return `${what} (${problem.code ?? status})`
}

/**
 * 410 watch_history_gone: the changes after the position a watch asked for are no longer in the
 * server's log (or the position is newer than anything it has). List the keys again, then watch
 * from the listing's sequence.
 */
export class WatchHistoryGoneError extends SlabkvError {
  override name = 'WatchHistoryGoneError'
  /** The first change the server still holds. */
  readonly oldestSequence: number | undefined
  /** The latest change the server has. */
  readonly newestSequence: number | undefined

  constructor(status: number, problem: Problem | undefined, text = '') {
    super(status, problem, text)
    this.oldestSequence = numberOrUndefined(problem?.oldestSequence)
    this.newestSequence = numberOrUndefined(problem?.newestSequence)
  }
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined
}

/**
 * No answer: nothing listening at the address, a refused or broken connection, a name that does
 * not resolve. For a write, whether the server applied it is unknown. `cause` is Node's error.
 */
export class SlabkvConnectionError extends Error {
  override name = 'SlabkvConnectionError'
}

/** An answer that is not what the API promises: JSON that does not parse, an event without an id. */
export class SlabkvProtocolError extends Error {
  override name = 'SlabkvProtocolError'
}
