import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Dialect } from './dialects.js'
import { type Load, statCpuS } from './measure.js'

// The wrk layer, for bench:wal and bench:peers: one Lua script per scenario and dialect, one wrk
// process per measurement.
//
// A script is four parts: the prologue (the key and value spellings of bench/preload.ts), the
// dialect's request functions, the scenario's own Lua, and the epilogue below. The scenario
// defines prepare(), which precomputes its requests and defines nextRequest() and
// ok(status, body). The epilogue calls prepare() from wrk's init hook, in each wrk thread after
// seeding its generator: only then has wrk set the Host header that wrk.format() copies into a
// request (requests formatted when the script loads have none, and Node answers them 400). The epilogue checks every answer
// with ok() in wrk's response hook; a wrong answer is counted and its first instance kept, and
// is never counted as throughput. At the end, wrk's done() hook prints the counts,
// the latency percentiles (µs, from wrk's own histogram) and wrk's /proc/self/stat, which is
// how the report knows how much CPU the load generator itself used: read inside wrk, after
// its threads have finished, before it exits.

export const luaSeed = 7

export function luaPrologue(keyCount: number): string {
  return `
keyCount = ${keyCount}
function key(n) return string.format("key:%012d", n) end
-- A value of size bytes, "value:<n>:" then x: the checks recognize a value by its prefix.
function valueText(n, size) local head = string.format("value:%012d:", n) return head .. string.rep("x", size - #head) end
function count(text, needle)
  local n, at = 0, 1
  while true do
    local found = string.find(text, needle, at, true)
    if not found then return n end
    n, at = n + 1, found + #needle
  end
end
`
}

const luaEpilogue = `
function init(args)
  math.randomseed(${luaSeed})
  prepare()
end
bad = 0
badSample = ""
function request() return nextRequest() end
function response(status, headers, body)
  if not ok(status, body or "") then
    bad = bad + 1
    if badSample == "" then badSample = status .. " " .. string.sub(body or "", 1, 160) end
  end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local badCount, sample = 0, ""
  for _, thread in ipairs(threads) do
    badCount = badCount + thread:get("bad")
    if sample == "" then sample = thread:get("badSample") end
  end
  local file = io.open("/proc/self/stat", "r")
  local stat = file and file:read("*l") or ""
  if file then file:close() end
  local e = summary.errors
  io.write(string.format("peers: %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), badCount, e.connect, e.read, e.write, e.timeout))
  io.write("peers-stat: ", stat, "\\n")
  io.write("peers-bad: ", (string.gsub(sample, "%c", " ")), "\\n")
end
`

/** A scenario's Lua: prepare() runs in wrk's init hook, per thread (see above). */
export const prepareLua = (body: string) => `function prepare()\n${body}end\n`

/** Lua: ok(status, body) for a GET of a preloaded key, whose value has `size` bytes. */
export const getOkLua = (size: number) =>
  `function ok(status, body) return status == 200 and #body == ${size} and string.sub(body, 1, 6) == "value:" end\n`

/** Writes the script for one scenario and dialect; returns its path. */
export function writeScript(
  dir: string,
  name: string,
  keyCount: number,
  dialect: Dialect,
  scenarioLua: string,
): string {
  const path = join(dir, `${name}.${dialect.name}.lua`)
  writeFileSync(path, luaPrologue(keyCount) + dialect.lua + scenarioLua + luaEpilogue)
  return path
}

export interface WrkOptions {
  url: string
  script: string
  threadCount: number
  connectionCount: number
  seconds: number
}

export function runWrk(options: WrkOptions): Promise<Load> {
  const { url, script, threadCount, connectionCount, seconds } = options
  const argv = [`-t${threadCount}`, `-c${connectionCount}`, `-d${seconds}s`, '-s', script, url]
  return new Promise((resolve, reject) => {
    execFile('wrk', argv, { encoding: 'utf8', maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`wrk ${argv.join(' ')} failed: ${error.message}\n${stdout}${stderr}`))
        return
      }
      const numbers = /^peers: (.*)$/m.exec(stdout)?.[1]?.split(' ').map(Number)
      const stat = /^peers-stat: (.*)$/m.exec(stdout)?.[1]
      assert(numbers?.length === 9 && stat, `wrk printed no result:\n${stdout}${stderr}`)
      const [requests, durationUs, p50Us, p99Us, badCount, ...socketErrors] = numbers as [
        number,
        number,
        number,
        number,
        number,
        ...number[],
      ]
      const durationS = durationUs / 1e6
      resolve({
        generator: 'wrk',
        requests,
        durationS,
        requestsPerSecond: (requests - badCount) / durationS,
        latencyP50Ms: p50Us / 1000,
        latencyP99Ms: p99Us / 1000,
        badCount,
        badSample: /^peers-bad: (.*)$/m.exec(stdout)?.[1] ?? '',
        socketErrorCount: socketErrors.reduce((sum, n) => sum + n, 0),
        generatorCpuS: statCpuS(stat),
      })
    })
  })
}
