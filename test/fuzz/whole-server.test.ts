import { afterAll, expect, it } from 'vitest'
import { testSeed } from '../support/random.js'
import { killAll } from '../support/server.js'
import { runFuzz } from './driver.js'

// The generative whole-server test (see driver.ts). In `npm test` it runs a bounded slice:
// at most sliceRoundCount rounds and sliceDurationMs, with restarts between. FUZZ_MINUTES (set
// by `npm run fuzz -- --minutes N`) runs it for that long instead. SEED=<n> replays a run:
// each connection's requests, and when the server restarts, follow from the seed (how the
// connections interleave, and so the instant a SIGKILL lands, do not).

const sliceRoundCount = 10_000
const sliceDurationMs = 40_000

afterAll(async () => {
  await killAll()
})

const minutes = Number(process.env.FUZZ_MINUTES ?? 0)
const durationMs = minutes > 0 ? minutes * 60_000 : sliceDurationMs

it(
  'answers random requests over every route as the model says, across SIGTERM and SIGKILL restarts',
  async () => {
    const seed = testSeed('whole-server fuzz')
    const report = await runFuzz({
      seed,
      roundCountMax: minutes > 0 ? Number.MAX_SAFE_INTEGER : sliceRoundCount,
      durationMs,
      connectionCount: 4,
      roundsPerRestart: minutes > 0 ? 2_000 : 1_500,
      log: (line) => console.log(line),
    })
    console.log(`whole-server fuzz: ${JSON.stringify(report)}`)
    expect(report.requests).toBeGreaterThan(0)
  },
  durationMs + 60_000,
)
