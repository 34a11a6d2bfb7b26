import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DialectName } from './dialects.js'
import { root } from './report.js'
import { freePort, type Server, startServer } from './servers.js'

// The systems the load benchmarks measure, and the one way each is started: by the benchmark, on
// 127.0.0.1, in a temporary directory of its own, and stopped by it by PID (bench/servers.ts).
//
// - slabkv (`slabkv serve`), on the Node running the benchmark (npm run puts the project's
//   Node 24 first on PATH), with the handler threads and --fsync mode asked for and its data
//   directory in its own directory; every option not given is slabkv's default.
// - Hono + Map (bench/peers/hono-map.ts) and fastify + lru-cache (bench/peers/fastify-lru.ts),
//   on the same Node: what a Node developer writes by hand, with slabkv's routes.
// - webdis + Redis 7: the existing HTTP front end for a real KV store. Redis without
//   persistence (--save '' --appendonly no), or with --appendonly yes --appendfsync always, the
//   durable counterpart of slabkv's --fsync always. webdis with 2 threads (one per core, as
//   slabkv --threads 2) and its source's default pool of 2 Redis connections each.

export type Family = 'slabkv' | 'redis' | 'fastify' | 'hono'

export interface SystemSpec {
  id: string
  label: string
  family: Family
  dialect: DialectName
  /** An acknowledged write survives a power loss. */
  durable: boolean
  start(env: SystemEnv, nodeArgs?: string[]): Promise<RunningSystem>
}

export interface RunningSystem {
  spec: SystemSpec
  url: string
  /** Every process whose CPU counts as the system's: webdis and Redis both. */
  pids: number[]
  /** How it was started, for the report. */
  command: string
  listening: Record<string, unknown>
  /** Stops its processes (SIGTERM) and waits for them to exit. */
  stop(): Promise<void>
}

export interface SystemEnv {
  workDir: string
}

const distDir = join(root, 'dist')
const cliPath = join(distDir, 'src', 'cli.js')
const major = (version: string) => version.slice(1).split('.')[0]
/** The major version of the Node running the benchmark, which runs slabkv too. */
export const node = major(process.version)

function directory(env: SystemEnv, id: string): string {
  const dir = join(env.workDir, id)
  mkdirSync(dir, { recursive: true })
  return dir
}

function described(spec: SystemSpec, server: Server, command: string[]): RunningSystem {
  return {
    spec,
    url: server.url,
    pids: [server.pid],
    command: command.map((arg) => (arg === '' ? "''" : arg)).join(' '),
    listening: server.listening,
    stop: () => server.stop(),
  }
}

export type FsyncMode = 'always' | 'everysec' | 'no'

export interface SlabkvOptions {
  threads: number
  fsync: FsyncMode
  /** More `slabkv serve` options. */
  serveArgs?: string[]
  /** The defaults say the Node major version, the threads and the --fsync mode. */
  id?: string
  label?: string
  /** Another build's dist/src/cli.js (bench:ab); this checkout's by default. */
  cliPath?: string
}

export function slabkvSystem(options: SlabkvOptions): SystemSpec {
  const { threads, fsync, serveArgs = [], cliPath: cli = cliPath } = options
  const spec: SystemSpec = {
    id: options.id ?? `slabkv-${node}x${threads}${fsync === 'always' ? '' : `-fsync-${fsync}`}`,
    label:
      options.label ??
      `slabkv, Node ${node}, ${threads} thread${threads === 1 ? '' : 's'}, --fsync ${fsync}`,
    family: 'slabkv',
    dialect: 'slabkv',
    durable: fsync === 'always',
    async start(env, nodeArgs = []) {
      const dir = directory(env, spec.id)
      const argv = [...nodeArgs, cli, 'serve', '--host', '127.0.0.1']
      argv.push('--port', String(await freePort()), '--threads', String(threads))
      argv.push('--fsync', fsync, '--data-dir', join(dir, 'data'), ...serveArgs)
      const server = await startServer(spec.label, argv, dir, { command: process.execPath })
      return described(spec, server, ['node', ...argv.slice(nodeArgs.length)])
    },
  }
  return spec
}

/** A peer written in Node; its label gets the Node version it ran on unless one is given. */
function nodePeer(id: string, family: Family, name: string, file: string, label?: string) {
  const spec: SystemSpec = {
    id,
    label: label ?? name,
    family,
    dialect: 'slabkv',
    durable: false,
    async start(env) {
      const argv = [join(distDir, 'bench', 'peers', file), String(await freePort())]
      const server = await startServer(spec.label, argv, directory(env, id), {
        command: process.execPath,
      })
      if (label === undefined)
        spec.label = `${name} (Node ${major(String(server.listening.node ?? '?'))})`
      return described(spec, server, ['node', ...argv])
    },
  }
  return spec
}

export const honoMapSystem = (label?: string) =>
  nodePeer('hono-map', 'hono', 'Hono + Map', 'hono-map.js', label)

export const fastifyLruSystem = (label?: string) =>
  nodePeer('fastify-lru', 'fastify', 'fastify + lru-cache', 'fastify-lru.js', label)

export function webdisRedisSystem(appendfsyncAlways: boolean): SystemSpec {
  const spec: SystemSpec = {
    id: appendfsyncAlways ? 'webdis-redis-aof' : 'webdis-redis',
    label: appendfsyncAlways ? 'webdis + Redis, appendfsync always' : 'webdis + Redis',
    family: 'redis',
    dialect: 'webdis',
    durable: appendfsyncAlways,
    async start(env) {
      const dir = directory(env, spec.id)
      const redisPort = await freePort()
      const redisArgv = ['--bind', '127.0.0.1', '--port', String(redisPort), '--dir', dir]
      redisArgv.push('--daemonize', 'no', '--save', '', '--logfile', '')
      if (appendfsyncAlways) redisArgv.push('--appendonly', 'yes', '--appendfsync', 'always')
      else redisArgv.push('--appendonly', 'no')
      const redis = await startServer(`Redis for ${spec.label}`, redisArgv, dir, {
        command: 'redis-server',
        readyPort: redisPort,
      })
      const httpPort = await freePort()
      const config = {
        redis_host: '127.0.0.1',
        redis_port: redisPort,
        http_host: '127.0.0.1',
        http_port: httpPort,
        threads: 2,
        pool_size: 2,
        daemonize: false,
        database: 0,
        verbosity: 1,
        logfile: join(dir, 'webdis.log'),
      }
      const configPath = join(dir, 'webdis.json')
      writeFileSync(configPath, JSON.stringify(config, null, 2))
      const webdis = await startServer(spec.label, [configPath], dir, {
        command: 'webdis',
        readyPort: httpPort,
      })
      return {
        spec,
        url: webdis.url,
        pids: [webdis.pid, redis.pid],
        command: `redis-server ${redisArgv.map((a) => (a === '' ? "''" : a)).join(' ')}; webdis ${JSON.stringify(config)}`,
        listening: {},
        async stop() {
          await webdis.stop()
          await redis.stop()
        },
      }
    },
  }
  return spec
}

/**
 * Starts each system in turn, in a directory of its own under `workDir`, and logs where it
 * listens and how it was started.
 */
export async function startSystems(specs: SystemSpec[], workDir: string): Promise<RunningSystem[]> {
  const started: RunningSystem[] = []
  for (const spec of specs) {
    const system = await spec.start({ workDir })
    process.stderr.write(
      `${spec.label}: ${system.url}, pids ${system.pids.join(' ')}: ${system.command}\n`,
    )
    started.push(system)
  }
  return started
}
