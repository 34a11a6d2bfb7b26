#!/usr/bin/env node
// `npm run fuzz -- --minutes N [--seed S]`: the generative whole-server test
// (test/fuzz/whole-server.test.ts) for N minutes instead of the slice `npm test` runs. It builds
// first, since the test drives the compiled server. A failure prints its seed; --seed replays it.

import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'

const usage = 'usage: npm run fuzz -- --minutes N [--seed S]'
let values
try {
  ;({ values } = parseArgs({
    options: { minutes: { type: 'string', default: '10' }, seed: { type: 'string' } },
  }))
} catch (error) {
  console.error(`${error.message}\n${usage}`)
  process.exit(2)
}
const minutes = Number(values.minutes)
if (!(minutes > 0 && minutes <= 24 * 60)) {
  console.error(
    `--minutes must be a number of minutes from 0 to 1440, not '${values.minutes}'\n${usage}`,
  )
  process.exit(2)
}
if (values.seed !== undefined && !/^\d+$/.test(values.seed)) {
  console.error(`--seed must be a whole number, not '${values.seed}'\n${usage}`)
  process.exit(2)
}

const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status ?? 1)
const env = { ...process.env, FUZZ_MINUTES: String(minutes) }
if (values.seed !== undefined) env.SEED = values.seed
const run = spawnSync('npx', ['vitest', 'run', 'test/fuzz/whole-server.test.ts'], {
  stdio: 'inherit',
  env,
})
process.exit(run.status ?? 1)
