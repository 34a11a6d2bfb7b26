import { lstatSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'

// One process per data directory. Two servers appending to the same log would interleave their
// segments, and the second one's recovery would cut the first one's unsynced tail as "torn".
// Node has no flock(2), so the lock is a symbolic link created exclusively whose target names its
// process and the boot it runs in, as PostgreSQL's postmaster.pid does in a file (and Emacs's
// lock files in a link). A link's short target lives in its inode, not in a data block: a server
// takes its directory even on a full disk, where a crash may well have left it. (A regular file
// from an earlier version, holding the same text, is still read.) A process that dies without
// removing it (kill -9, a power loss) leaves it stale, and the next start takes it over when:
// - it names another boot: after a reboot its pid may belong to any process;
// - its process no longer runs, or is a zombie (dead, not yet reaped by its parent);
// - its process is this very one (a container restarted with the same pid 1).
// What kill(pid, 0) cannot see is not guarded against: processes in another PID namespace (two
// containers on one volume) or on another host, and two processes taking the same stale lock
// in the same instant. The check is for the mistake of starting a second server.

export const lockFileName = 'slabkv.lock'

export class DataDirInUseError extends Error {}

/** A lock left behind by a process that did not stop cleanly, and why it no longer holds. */
export interface StaleLock {
  pid: number
  why: 'its process no longer runs' | 'it names an earlier boot' | 'it names this process'
}

/**
 * Takes the data directory, which must exist; returns the function that releases it. A stale
 * lock is taken over, and onTakeOver hears whose it was (undefined for a lock that names no
 * process at all), so the start can say that the previous server did not stop cleanly.
 */
export function lockDataDir(
  dir: string,
  onTakeOver: (stale: StaleLock | undefined) => void = () => {},
): () => void {
  const path = join(dir, lockFileName)
  const boot = bootId()
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      symlinkSync(`${process.pid}\n${boot ?? ''}\n`, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      if (readLock(path) === undefined) continue // released meanwhile
      const holder = lockHolder(path)
      const why = holder === undefined ? undefined : whyNotHeld(holder, boot)
      if (holder !== undefined && why === undefined) {
        throw new DataDirInUseError(
          `the data directory ${dir} is in use by process ${holder.pid} (${path}); ` +
            'stop that process, or remove the file if no such slabkv runs',
        )
      }
      rmSync(path, { force: true })
      onTakeOver(holder === undefined || why === undefined ? undefined : { pid: holder.pid, why })
      continue
    }
    return () => {
      if (lockHolder(path)?.pid === process.pid) rmSync(path, { force: true })
    }
  }
  throw new DataDirInUseError(`the data directory ${dir} was taken by another process meanwhile`)
}

interface Holder {
  pid: number
  boot: string | undefined
}

/** The lock's text: its link's target, or an earlier version's file; undefined when absent. */
export function readLock(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** What a lock names, or undefined for one that names no process (a torn write, garbage). */
function lockHolder(path: string): Holder | undefined {
  const text = readLock(path)
  if (text === undefined) return undefined
  const [pidText = '', boot = ''] = text.split('\n')
  const pid = Number(pidText)
  if (pidText === '' || !Number.isSafeInteger(pid) || pid <= 0) return undefined
  return { pid, boot: boot === '' ? undefined : boot }
}

/** Why a lock's holder no longer holds it; undefined while it does. */
function whyNotHeld(holder: Holder, boot: string | undefined): StaleLock['why'] | undefined {
  if (holder.boot !== undefined && boot !== undefined && holder.boot !== boot)
    return 'it names an earlier boot'
  if (holder.pid === process.pid) return 'it names this process'
  try {
    // Signal 0 checks that the process exists without signalling it.
    process.kill(holder.pid, 0)
  } catch (error) {
    // EPERM: it exists, under another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'its process no longer runs'
  }
  return isZombie(holder.pid) ? 'its process no longer runs' : undefined
}

/** Linux's id of the current boot; undefined where there is none to read. */
function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

function isZombie(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (command) state ..."; the command may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return false
  }
}
