import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cutLog } from '../../../src/wal/recovery.js'
import { SimulatedDisk } from '../../support/simulated-disk.js'

// cutLog keeps every byte it cuts in a .broken file, since a repair may cut acknowledged
// records. Segment names come back (a repair that cuts a segment to its header leaves a file the
// next start reuses), so a later cut must never overwrite what an earlier one kept; and a cut a
// crash interrupted, run again, must not leave its half copy behind under another name.

const dir = '/data'
const bytes = (text: string) => new TextEncoder().encode(text)
const text = (disk: SimulatedDisk, name: string) =>
  new TextDecoder().decode(disk.read(join(dir, name)))

describe('cutLog', () => {
  it('keeps the bytes of a second cut at the same file and offset beside those of the first', () => {
    const disk = SimulatedDisk.fromFiles([[join(dir, 'wal-1.log'), bytes('HEADER-first-cut')]])
    expect(cutLog(disk, dir, 'wal-1.log', 6, []).kept).toEqual(['wal-1.log.at-6.broken'])
    const fd = disk.openAppend(join(dir, 'wal-1.log'))
    disk.append(fd, bytes('-second-cut'))
    disk.close(fd)
    expect(cutLog(disk, dir, 'wal-1.log', 6, []).kept).toEqual(['wal-1.log.at-6.2.broken'])
    expect(text(disk, 'wal-1.log.at-6.broken')).toBe('-first-cut')
    expect(text(disk, 'wal-1.log.at-6.2.broken')).toBe('-second-cut')
  })

  it('renames later segments beside earlier .broken ones, never over them', () => {
    const disk = SimulatedDisk.fromFiles([
      [join(dir, 'wal-1.log'), bytes('HEADER-cut')],
      [join(dir, 'wal-9.log'), bytes('later, second')],
      [join(dir, 'wal-9.log.broken'), bytes('later, first')],
    ])
    expect(cutLog(disk, dir, 'wal-1.log', 6, ['wal-9.log']).kept).toEqual([
      'wal-1.log.at-6.broken',
      'wal-9.log.2.broken',
    ])
    expect(text(disk, 'wal-9.log.broken')).toBe('later, first')
    expect(text(disk, 'wal-9.log.2.broken')).toBe('later, second')
  })

  it('takes up again the copy of a cut a crash interrupted, under the same name', () => {
    const disk = SimulatedDisk.fromFiles([
      [join(dir, 'wal-1.log'), bytes('HEADER-the-cut-bytes')],
      [join(dir, 'wal-1.log.at-6.broken'), bytes('-the-cu')],
    ])
    expect(cutLog(disk, dir, 'wal-1.log', 6, []).kept).toEqual(['wal-1.log.at-6.broken'])
    expect(text(disk, 'wal-1.log.at-6.broken')).toBe('-the-cut-bytes')
    expect(disk.list(dir).sort()).toEqual(['wal-1.log', 'wal-1.log.at-6.broken'])
  })
})
