import { autocannon, recordLatencies } from '../autocannon.js'
import type { Dialect } from '../dialects.js'
import { createRandom } from '../measure.js'
import type { Measurement } from '../wrk.js'
import { key, keyCount, valueSize } from './scenarios.js'

// autocannon, the Node-native load generator, in this process: GET hit only, the same requests
// as wrk's GET hit (a random preloaded key per request, from a seeded generator: the same
// sequence for every system) and the same check of every answer (status 200, 100 bytes starting
// "value:"). Its CPU is this process's during the run (process.cpuUsage), which does nothing
// else meanwhile. Latencies come from every response's time, to 0.01 ms (autocannon's own
// histogram reports whole milliseconds).

export async function runAutocannon(
  url: string,
  dialect: Dialect,
  connectionCount: number,
  seconds: number,
): Promise<Omit<Measurement, 'serverCpuS'>> {
  const paths = Array.from({ length: keyCount }, (_, n) => dialect.getPath(key(n)))
  const random = createRandom(0x5eed)
  let badCount = 0
  let badSample = ''
  const instance = autocannon({
    url,
    connections: connectionCount,
    pipelining: 1,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        setupRequest(request) {
          request.path = paths[Math.floor(random() * keyCount)]!
          return request
        },
        onResponse(status, body) {
          if (status === 200 && body.length === valueSize && body.startsWith('value:')) return
          if (badCount++ === 0) badSample = `${status} ${body.slice(0, 160)}`
        },
      },
    ],
  })
  const percentiles = recordLatencies(instance)
  const cpuStart = process.cpuUsage()
  const wallStart = process.hrtime.bigint()
  const result = await instance
  const durationS = Number(process.hrtime.bigint() - wallStart) / 1e9
  const cpu = process.cpuUsage(cpuStart)
  const percentile = percentiles()
  return {
    generator: 'autocannon',
    requests: result.requests.total,
    durationS,
    requestsPerSecond: (result.requests.total - badCount) / durationS,
    latencyP50Ms: percentile(50),
    latencyP99Ms: percentile(99),
    badCount,
    badSample,
    socketErrorCount: result.errors,
    generatorCpuS: (cpu.user + cpu.system) / 1e6,
  }
}
