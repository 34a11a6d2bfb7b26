import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DialectName } from './dialects.js'
import { root } from './report.js'
import { freePort, type Server, startServer } from './servers.js'

// The systems the peers benchmark compares, each started by the benchmark on 127.0.0.1 and
// stopped by it (by PID, through bench/servers.ts), each in a temporary directory of its own.
//
// - slabkv with 1 and with 2 handler threads, on the Node running the benchmark (npm run puts
//   the project's Node 24 first on PATH); each with --fsync always (the default: a write is
//   acknowledged after its fdatasync) and --fsync no. Every other option is slabkv's default.
// - webdis + Redis 7: the existing HTTP front end for a real KV store. Redis without
//   persistence (--save '' --appendonly no), and again with --appendonly yes --appendfsync
//   always, the durable counterpart of slabkv's --fsync always. webdis with 2 threads (one per
//   core, as slabkv --threads 2) and its source's default pool of 2 Redis connections each.
// - fastify + lru-cache (bench/peers/fastify-lru.ts) and Hono + Map (bench/peers/hono-map.ts),
//   on the same Node.

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

function slabkv(threads: 1 | 2, fsync: 'always' | 'no'): SystemSpec {
  const node = major(process.version)
  const spec: SystemSpec = {
    id: `slabkv-${node}x${threads}${fsync === 'no' ? '-fsync-no' : ''}`,
    label: `slabkv, Node ${node}, ${threads} thread${threads === 1 ? '' : 's'}, --fsync ${fsync}`,
    family: 'slabkv',
    dialect: 'slabkv',
    durable: fsync === 'always',
    async start(env, nodeArgs = []) {
      const dir = directory(env, spec.id)
      const argv = [...nodeArgs, cliPath, 'serve', '--host', '127.0.0.1']
      argv.push('--port', String(await freePort()), '--threads', String(threads))
      argv.push('--fsync', fsync, '--data-dir', join(dir, 'data'))
      const server = await startServer(spec.label, argv, dir, { command: process.execPath })
      return described(spec, server, ['node', ...argv.slice(nodeArgs.length)])
    },
  }
  return spec
}

function nodePeer(id: string, family: Family, name: string, file: string): SystemSpec {
  const spec: SystemSpec = {
    id,
    label: name,
    family,
    dialect: 'slabkv',
    durable: false,
    async start(env) {
      const argv = [join(distDir, 'bench', 'peers', file), String(await freePort())]
      const server = await startServer(spec.label, argv, directory(env, id), {
        command: process.execPath,
      })
      const version = String(server.listening.node ?? '?')
      spec.label = `${name} (Node ${major(version)})`
      return described(spec, server, ['node', ...argv])
    },
  }
  return spec
}

function webdisRedis(appendfsyncAlways: boolean): SystemSpec {
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

/** Every system, in the order of each round. */
export function systemSpecs(): SystemSpec[] {
  return [
    slabkv(1, 'always'),
    slabkv(1, 'no'),
    slabkv(2, 'always'),
    slabkv(2, 'no'),
    webdisRedis(false),
    webdisRedis(true),
    nodePeer('fastify-lru', 'fastify', 'fastify + lru-cache', 'fastify-lru.js'),
    nodePeer('hono-map', 'hono', 'Hono + Map', 'hono-map.js'),
  ]
}

/** The slabkv the targets are measured on: Node 24, 2 handler threads, --fsync always. */
export const targetSystemId = `slabkv-${major(process.version)}x2`
