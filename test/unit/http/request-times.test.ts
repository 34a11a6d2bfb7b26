import { describe, expect, it } from 'vitest'
import {
  bucketBounds,
  createRequestTimesBuffer,
  operations,
  RequestTimes,
  requestTimesText,
} from '../../../src/http/request-times.js'

// The request-latency histogram's arithmetic: which bucket a time falls in, the regions of
// several threads summed, and the Prometheus text. (Two handler threads counting into one
// buffer, exactly, are in test/e2e/metrics-promtool.test.ts.)

const getKey = operations.indexOf('getKey')
const putKey = operations.indexOf('putKey')

describe('RequestTimes', () => {
  it('counts a time in the first bucket whose bound is at least the time', () => {
    const times = new RequestTimes()
    times.observe(getKey, 0.0001) // on the first bound: in it
    times.observe(getKey, 0.00010001) // just above: in the next
    times.observe(getKey, 10) // on the last bound
    times.observe(getKey, 11) // above every bound: +Inf only
    const [read] = times.read()
    expect(read!.operation).toBe('getKey')
    expect(read!.buckets[0]).toBe(1)
    expect(read!.buckets[1]).toBe(2)
    expect(read!.buckets[bucketBounds.length - 1]).toBe(3)
    expect(read!.buckets[bucketBounds.length]).toBe(4)
    expect(read!.sumSeconds).toBeCloseTo(21.00020001, 9)
  })

  it('sums the regions of every thread, and lists only the operations counted', () => {
    const buffer = createRequestTimesBuffer(3)
    const threads = [new RequestTimes(buffer), new RequestTimes(buffer), new RequestTimes(buffer)]
    threads.forEach((times, i) => {
      for (let n = 0; n <= i; n++) times.observe(putKey, 0.002)
      times.observe(getKey, 0.0003)
    })
    const byOperation = Object.fromEntries(threads[1]!.read().map((t) => [t.operation, t]))
    expect(Object.keys(byOperation)).toEqual(['putKey', 'getKey'])
    expect(byOperation.putKey!.buckets.at(-1)).toBe(6)
    expect(byOperation.getKey!.buckets.at(-1)).toBe(3)
    // Each thread reads the same sums.
    expect(threads[0]!.read()).toEqual(threads[2]!.read())
    expect(() => new RequestTimes(buffer)).toThrow(/region 3 of 3/)
  })

  it('writes one histogram family in Prometheus text, declared even when empty', () => {
    expect(requestTimesText([])).toEqual([
      expect.stringMatching(/^# HELP slabkv_http_request_duration_seconds /),
      '# TYPE slabkv_http_request_duration_seconds histogram',
    ])
    const times = new RequestTimes()
    times.observe(putKey, 0.5)
    const lines = requestTimesText(times.read())
    expect(lines).toContain(
      'slabkv_http_request_duration_seconds_bucket{operation="putKey",le="0.25"} 0',
    )
    expect(lines).toContain(
      'slabkv_http_request_duration_seconds_bucket{operation="putKey",le="0.5"} 1',
    )
    expect(lines).toContain(
      'slabkv_http_request_duration_seconds_bucket{operation="putKey",le="+Inf"} 1',
    )
    expect(lines.slice(-2)).toEqual([
      'slabkv_http_request_duration_seconds_sum{operation="putKey"} 0.5',
      'slabkv_http_request_duration_seconds_count{operation="putKey"} 1',
    ])
    expect(lines.length).toBe(2 + bucketBounds.length + 3)
  })
})
