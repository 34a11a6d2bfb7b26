// Every exit code of the slabkv command in one table: what a script can rely on. A code means
// the same kind of outcome in every command; docs/configuration.md lists this table, and a test
// holds the two together.

export const exitCodes = {
  ok: {
    code: 0,
    meaning:
      'done: the server stopped cleanly, the command did what it was asked, wal check found the log clean, watch was stopped by SIGINT or SIGTERM',
  },
  failed: {
    code: 1,
    meaning:
      'serve could not start (a port in use, the data directory held, Node too old) or a handler thread failed; get and del: no such key; wal check: a torn tail, which the next start cuts by itself; wal repair: a server holds the directory, or there is no room to keep the cut bytes',
  },
  usage: { code: 2, meaning: 'a usage or configuration error: nothing was done' },
  server: {
    code: 3,
    meaning:
      'get, set, del, ls: the server could not be reached, or answered with an error; watch: its first connection failed, or the server refused the watch',
  },
  corrupt: {
    code: 4,
    meaning:
      'the log is corrupt, or holds a record the limits refuse: serve refuses to start, wal check found it, wal repair cannot cut it',
  },
  storageFailed: {
    code: 5,
    meaning: 'the log failed while serving (a failed fdatasync, or the WAL writer thread died)',
  },
  historyGone: {
    code: 6,
    meaning:
      'watch: the history to resume from is gone (the server no longer holds it, or never had it): list the keys again and watch from there',
  },
} as const

export const exitOk = exitCodes.ok.code
export const exitFailed = exitCodes.failed.code
export const exitUsage = exitCodes.usage.code
export const exitServer = exitCodes.server.code
export const exitCorrupt = exitCodes.corrupt.code
export const exitStorageFailed = exitCodes.storageFailed.code
export const exitHistoryGone = exitCodes.historyGone.code
