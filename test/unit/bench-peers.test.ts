import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { selfTimes } from '../../bench/cpuprofile.js'
import { dialects } from '../../bench/dialects.js'
import { keyCount, scenarios } from '../../bench/peers/scenarios.js'
import {
  evaluate,
  markdownTables,
  type Run,
  type SystemRef,
  summarize,
} from '../../bench/peers/summary.js'
import { valueText } from '../../bench/preload.js'
import { renderTable } from '../../bench/report.js'
import { runWrk, writeScript } from '../../bench/wrk.js'

// The peers benchmark's own logic: what counts as a figure, the targets, where a profile says
// the time goes, and a canary proving wrk's answer checks can fail.

const scenario = scenarios.find((s) => s.id === 'get-hit')!
const system: SystemRef = { id: 'x', label: 'x', family: 'slabkv', durable: true }

function run(requestsPerSecond: number, badCount = 0, socketErrorCount = 0): Run {
  return {
    generator: 'wrk',
    requests: requestsPerSecond * 5,
    durationS: 5,
    requestsPerSecond,
    latencyP50Ms: 1,
    latencyP99Ms: 2,
    badCount,
    badSample: badCount > 0 ? '404 ' : '',
    socketErrorCount,
    generatorCpuS: 1,
    serverCpuS: 2,
  }
}

describe('peers summary', () => {
  it('takes the median of the runs and flags a few wrong answers without counting them', () => {
    const summary = summarize(scenario, system, [run(100), run(300), run(200, 3)])
    expect(summary.failure).toBeNull()
    expect(summary.requestsPerSecond).toBe(200)
    expect(summary.wrongCount).toBe(3)
    expect(summary.wrongSample).toBe('404 ')
  })

  it('writes the wrong answers as a note with no space at a line end (the Markdown lint)', () => {
    const summaries = [summarize(scenario, system, [run(100), run(300), run(200, 3)])]
    const text = markdownTables(summaries, [system])
    expect(text).toMatch(/3 wrong answers, not counted; the first: 404$/m)
    expect(text.split('\n').filter((line) => line.endsWith(' '))).toEqual([])
  })

  it('has no figure when more than 1% of answers are wrong, a socket failed, or a run failed', () => {
    expect(summarize(scenario, system, [run(100, 6)]).failure).toMatch(/6 of 500 answers wrong/)
    expect(summarize(scenario, system, [run(100, 0, 1)]).failure).toMatch(/1 socket errors/)
    expect(summarize(scenario, system, [{ error: 'wrk failed' }]).failure).toBe('wrk failed')
  })

  it('judges a target on the ratio of medians and reports the rounds it came from', () => {
    const peer: SystemRef = { ...system, id: 'peer' }
    const summaries = [
      summarize(scenario, system, [run(90), run(120)]),
      summarize(scenario, peer, [run(100), run(100)]),
    ]
    const target = { title: 't', scenarioId: 'get-hit', systemId: 'x', peerId: 'peer' }
    const result = evaluate({ ...target, ratioMin: 1 }, summaries)
    expect(result.ratio).toBeCloseTo(1.05)
    expect(result.roundRatioRange).toEqual([0.9, 1.2])
    expect(result.verdict).toBe('pass')
    expect(evaluate({ ...target, ratioMin: 1.1 }, summaries).verdict).toBe('fail')
    expect(evaluate({ ...target, peerId: 'none', ratioMin: 1 }, summaries).verdict).toBe(
      'not measured',
    )
  })
})

describe('cpuprofile summary', () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-cpuprofile-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const frame = (id: number, functionName: string, url = '') => ({
    id,
    callFrame: { functionName, url, lineNumber: 0, columnNumber: 0 },
  })
  const path = join(dir, 'a.cpuprofile')
  writeFileSync(
    path,
    JSON.stringify({
      nodes: [
        frame(1, '(idle)'),
        frame(2, 'waitForRecords', 'file:///x/dist/src/wal/ring.js'),
        frame(3, 'get', 'file:///x/dist/src/store/store.js'),
        frame(4, 'match', 'file:///x/node_modules/hono/dist/router.js'),
      ],
      startTime: 1000,
      samples: [1, 2, 3, 4, 3],
      timeDeltas: [10, 10, 10, 10, 10],
    }),
  )

  it('counts self time while busy, leaving out idle and the WAL writer sleeping', () => {
    const { functions, places, waits } = selfTimes([path])
    expect(waits).toEqual([{ what: 'waitForRecords (the WAL writer sleeping)', ms: 0.01 }])
    expect(functions.map((f) => [f.place, f.selfMs * 1000])).toEqual([
      ['slabkv', 20],
      ['hono', 10],
    ])
    expect(places[0]!.percent).toBeCloseTo(66.7, 1)
  })

  it('keeps only the samples inside a window', () => {
    const { functions } = selfTimes([path], { startUs: 1035, endUs: 1045 })
    expect(functions.map((f) => f.place)).toEqual(['hono'])
  })
})

// The canary: a server that answers one GET in ten with the wrong bytes must be caught.
const hasWrk = spawnSync('which', ['wrk']).status === 0
describe.skipIf(!hasWrk)("wrk's answer checks", () => {
  let server: Server | undefined
  afterAll(() => {
    server?.closeAllConnections()
    server?.close()
  })

  it('count every wrong answer and never as throughput', async () => {
    let count = 0
    server = createServer((request, response) => {
      const n = Number(request.url!.split(':').at(-1))
      const wrong = ++count % 10 === 0
      response.end(wrong ? valueText(n, 99) : valueText(n, 100))
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    const dir = mkdtempSync(join(os.tmpdir(), 'slabkv-wrk-canary-'))
    const script = writeScript(dir, 'get-hit', keyCount, dialects.slabkv, scenario.lua)
    const url = `http://127.0.0.1:${address.port}`
    const result = await runWrk({ url, script, threadCount: 1, connectionCount: 4, seconds: 1 })
    rmSync(dir, { recursive: true, force: true })
    expect(result.requests).toBeGreaterThan(100)
    // Answers still in flight when wrk stops reach the server's count, not wrk's.
    expect(result.badCount).toBeGreaterThan(0)
    expect(result.badCount).toBeLessThanOrEqual(Math.floor(count / 10))
    expect(result.badSample).toMatch(/^200 value:\d{12}:x+$/)
    expect(result.badSample).toHaveLength('200 '.length + 99)
    expect(result.requestsPerSecond * result.durationS).toBeCloseTo(
      result.requests - result.badCount,
    )
    expect(result.generatorCpuS).toBeGreaterThan(0)
  })
})

describe('renderTable', () => {
  it('pads every column as Biome formats Markdown, aligned as asked', () => {
    const rows = [
      ['self', 'place', 'n'],
      ['12.5%', 'a', '7'],
      ['1.0%', 'node internals', '1234'],
    ]
    expect(renderTable(rows, ['right', 'left', 'right'])).toBe(
      [
        '|  self | place          |    n |',
        '| ----: | -------------- | ---: |',
        '| 12.5% | a              |    7 |',
        '|  1.0% | node internals | 1234 |',
      ].join('\n'),
    )
    // Without `align`: the first column left, the others right.
    expect(renderTable(rows).split('\n')[1]).toBe('| ----- | -------------: | ---: |')
  })
})
