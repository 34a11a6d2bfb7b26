import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The property and concurrency suites run for tens of seconds on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // expect.poll waits for a condition; 1 s (vitest's default) is less than one stall on CI.
    expect: { poll: { timeout: 10_000 } },
  },
})
