import {
  type ChangeEvent,
  type Entry,
  Slabkv,
  SlabkvError,
  WatchHistoryGoneError,
} from 'slabkv/client'

// A program of a slabkv user, outside the repository: it imports the client by the package's
// name, as an installed dependency, and is type-checked against the declarations the package
// exports (test/e2e/typed-client-package.test.ts). Each @ts-expect-error is a misuse the types
// must refuse. Run with a server's URL, it prints what it did as one JSON line.

const url = process.argv[2] ?? 'http://127.0.0.1:8000'
const kv = new Slabkv({ url })

// @ts-expect-error: a value is a string or bytes.
void (() => kv.set('k', 42))
// @ts-expect-error: the options are typed.
void (() => new Slabkv({ url, timeout: 5 }))

const { version } = await kv.set('package:greeting', 'hello', { ttlSeconds: 60 })
const entry: Entry | undefined = await kv.get('package:greeting')
const text: string | undefined = entry?.value.toString('utf8')

let conflict = ''
try {
  await kv.set('package:greeting', 'lost update', { ifVersion: version - 1 })
} catch (error) {
  if (error instanceof SlabkvError) conflict = `${error.status} ${error.code}`
}

const [written, read, missing] = await kv.batch([
  { op: 'set', key: 'package:n', value: '1' },
  { op: 'get', key: 'package:n' },
  { op: 'get', key: 'package:missing' },
])
// @ts-expect-error: a get's result may be undefined (no such key).
void (() => missing.version)
const batch = [written.version === (read?.version ?? -1), missing === undefined]

const keys: string[] = []
for await (const listed of kv.list({ prefix: 'package:' })) keys.push(listed.key)

let gone: number | undefined
try {
  for await (const change of kv.watch({ since: 1_000_000_000 })) {
    const typed: ChangeEvent = change
    void typed
  }
} catch (error) {
  if (error instanceof WatchHistoryGoneError) gone = error.oldestSequence
}

const stats = await kv.stats()
process.stdout.write(
  `${JSON.stringify({ text, conflict, batch, keys: keys.sort(), gone, sets: stats.sets })}\n`,
)
