import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'

// One process per data directory. Two servers appending to the same log would interleave their
// segments, and the second one's recovery would cut the first one's unsynced tail as "torn".
// Node has no flock(2), so the lock is a file created exclusively that names its process, as
// PostgreSQL's postmaster.pid does. A process that dies without removing it (kill -9, a power
// loss) leaves it stale; the next start takes it over when its process no longer runs, or is
// this very process (a container restarted with the same pid 1). Two processes that find the
// same stale lock in the same instant could both take it: the check is for the mistake of
// starting a second server, not for a race between two starting at once.

export const lockFileName = 'slabkv.lock'

export class DataDirInUseError extends Error {}

/** Takes the data directory, which must exist; returns the function that releases it. */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, lockFileName)
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const holder = lockHolder(path)
      if (holder !== undefined && holder !== process.pid && isRunning(holder)) {
        throw new DataDirInUseError(
          `the data directory ${dir} is in use by process ${holder} (${path}); ` +
            'stop that process, or remove the file if no such slabkv runs',
        )
      }
      rmSync(path, { force: true })
      continue
    }
    try {
      writeSync(fd, `${process.pid}\n`)
    } finally {
      closeSync(fd)
    }
    return () => {
      if (lockHolder(path) === process.pid) rmSync(path, { force: true })
    }
  }
  throw new DataDirInUseError(`the data directory ${dir} was taken by another process meanwhile`)
}

/** The pid a lock file names, or undefined for a file that names none (a torn write). */
function lockHolder(path: string): number | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const pid = Number(text.trim())
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

function isRunning(pid: number): boolean {
  try {
    // Signal 0 checks that the process exists without signalling it.
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
