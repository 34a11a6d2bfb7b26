import { existsSync, readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { envName, optionSpecs } from '../../src/config.js'
import { errorTable } from '../../src/errors.js'
import { exitCodes } from '../../src/exit-codes.js'

// The docs hold catalogues of what the code defines: the error codes, the exit codes, the
// options, the files of src/ and the tests. Each is checked here against the code, both ways,
// so that a code, an option, a file or a row added or removed on either side fails the suite
// instead of leaving the docs wrong. Every relative link must reach a file of the repository,
// and a link to a heading must reach that heading.

const root = fileURLToPath(new URL('../../', import.meta.url))
const docPaths = [
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join('docs', name)),
  join('bench', 'README.md'),
]

function read(path: string): string {
  return readFileSync(join(root, path), 'utf8')
}

/** The lines of a document outside fenced code blocks, each with its line number. */
function proseLines(text: string): { line: string; number: number }[] {
  const lines: { line: string; number: number }[] = []
  let fence: string | undefined
  text.split('\n').forEach((line, index) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1]
    if (marker !== undefined && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined
      return
    }
    if (fence === undefined) lines.push({ line, number: index + 1 })
  })
  return lines
}

/** The text from a heading (matched exactly) to the next heading of its level or above. */
function section(text: string, heading: string): string {
  const lines = proseLines(text)
  const level = /^#+/.exec(heading)![0].length
  const start = lines.findIndex(({ line }) => line.trim() === heading)
  expect(start, `no heading "${heading}"`).toBeGreaterThanOrEqual(0)
  const end = lines.findIndex(
    ({ line }, index) => index > start && /^#+ /.test(line) && /^#+/.exec(line)![0].length <= level,
  )
  return lines
    .slice(start + 1, end === -1 ? undefined : end)
    .map(({ line }) => line)
    .join('\n')
}

/** A table's cells split on the pipes that are not escaped, each trimmed. */
function cells(row: string): string[] {
  return row
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replaceAll('\\|', '|'))
}

interface Table {
  header: string[]
  rows: Record<string, string>[]
}

/** Every table in the text: its header's cells, and each row keyed by them. */
function tables(text: string): Table[] {
  const found: Table[] = []
  const lines = text.split('\n')
  for (let index = 0; index < lines.length; index++) {
    const isRow = (line: string | undefined) => line?.trim().startsWith('|') === true
    if (!isRow(lines[index]) || isRow(lines[index - 1])) continue
    const header = cells(lines[index]!)
    expect(lines[index + 1], `a table's second line is its delimiter row`).toMatch(
      /^\s*\|[\s:|-]+$/,
    )
    const rows: Record<string, string>[] = []
    for (index += 2; isRow(lines[index]); index++) {
      const row = cells(lines[index]!)
      expect(row.length, lines[index]).toBe(header.length)
      rows.push(Object.fromEntries(header.map((name, column) => [name, row[column]!])))
    }
    found.push({ header, rows })
  }
  return found
}

/** The text of a cell with its code spans' backticks taken off. */
const plain = (cell: string) => cell.replaceAll('`', '')

/** The one code span a cell holds, such as `--port` or `invalid_json`. */
function codeSpan(cell: string): string {
  const match = /^`([^`]+)`$/.exec(cell)
  expect(match, `expected one code span, not ${cell}`).not.toBeNull()
  return match![1]!
}

describe('docs/api.md: the errors table', () => {
  const errors = section(read('docs/api.md'), '## Errors')
  const table = tables(errors).find(({ header }) => header.includes('code'))!

  it('lists every code of src/errors.ts once, and no other', () => {
    const codes = table.rows.map((row) => codeSpan(row.code!))
    expect(new Set(codes).size, 'a code listed twice').toBe(codes.length)
    expect([...codes].sort()).toEqual(Object.keys(errorTable).sort())
  })

  it('gives each code its status and title as src/errors.ts has them', () => {
    for (const row of table.rows) {
      const entry = errorTable[codeSpan(row.code!) as keyof typeof errorTable]
      expect(Number(row.status), row.code).toBe(entry.status)
      if (table.header.includes('title')) expect(row.title, row.code).toBe(entry.title)
    }
  })
})

describe('docs/configuration.md: the exit codes', () => {
  const exits = section(read('docs/configuration.md'), '## Exit codes')
  const exitTables = tables(exits)

  it('has one table, one row per code of src/exit-codes.ts, and no other', () => {
    expect(exitTables).toHaveLength(1)
    const codes = exitTables[0]!.rows.map((row) => Number(row.code))
    expect(new Set(codes).size, 'a code listed twice').toBe(codes.length)
    const defined = Object.values(exitCodes).map(({ code }) => code)
    expect([...codes].sort((a, b) => a - b)).toEqual([...defined].sort((a, b) => a - b))
  })

  it('gives each code its name and meaning as src/exit-codes.ts has them', () => {
    const { header, rows } = exitTables[0]!
    for (const row of rows) {
      const entry = Object.entries(exitCodes).find(([, { code }]) => code === Number(row.code))!
      if (header.includes('name')) expect(codeSpan(row.name!), row.code).toBe(entry[0])
      expect(plain(row.meaning!), `the meaning of ${row.code}`).toBe(entry[1].meaning)
    }
  })
})

describe('docs/configuration.md: the options', () => {
  const options = section(read('docs/configuration.md'), '## Options')
  const rows = tables(options)
    .filter(({ header }) => header[0] === 'flag')
    .flatMap(({ rows }) => rows)
  /** Defaults the code computes, with what the docs say instead, and the check that holds it. */
  const described: Record<string, { cell: string; holds: (specDefault: string) => boolean }> = {
    threads: {
      cell: 'the cores, at most 8',
      holds: (value) => value === String(Math.min(os.availableParallelism(), 8)),
    },
    'node-id': { cell: '`<hostname>:<port>`', holds: (value) => value === '' },
  }

  it('lists every option of src/config.ts once, and no other', () => {
    const flags = rows.map((row) => codeSpan(row.flag!))
    expect(new Set(flags).size, 'an option listed twice').toBe(flags.length)
    expect([...flags].sort()).toEqual(optionSpecs.map((spec) => `--${spec.flag}`).sort())
  })

  it('gives each option its variable and its default', () => {
    for (const spec of optionSpecs) {
      const row = rows.find((candidate) => candidate.flag === `\`--${spec.flag}\``)
      expect(row, `--${spec.flag} has no row`).toBeDefined()
      if (row === undefined) continue
      expect(row.variable, spec.flag).toBe(`\`${envName(spec.flag)}\``)
      const computed = described[spec.flag]
      if (computed !== undefined) {
        expect(row.default, spec.flag).toBe(computed.cell)
        expect(computed.holds(spec.default), `${spec.flag}'s default in src/config.ts`).toBe(true)
      } else if (spec.default === '') {
        expect(row.default, spec.flag).toBe('none')
      } else {
        // The value as --help prints it, possibly followed by a word on what it means.
        expect(row.default, spec.flag).toMatch(
          new RegExp(`^\`${spec.default.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`( \\(.*\\))?$`),
        )
      }
    }
  })
})

describe('docs/architecture.md: the file map', () => {
  const map = section(read('docs/architecture.md'), '### `src/`')
  const listed = tables(map)
    .flatMap(({ rows }) => rows)
    .flatMap((row) => [...row.file!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!))

  function sources(dir: string): string[] {
    return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory()
        ? sources(join(dir, entry.name))
        : entry.name.endsWith('.ts')
          ? [
              relative(join(root, 'src'), join(root, dir, entry.name))
                .split(sep)
                .join('/'),
            ]
          : [],
    )
  }

  it('names every file of src/ once, and only files that exist', () => {
    expect(new Set(listed).size, 'a file listed twice').toBe(listed.length)
    expect([...listed].sort()).toEqual(sources('src').sort())
  })
})

describe('docs/testing.md: the test files', () => {
  const testing = read('docs/testing.md')
  /** A folder's test files, with the path under the folder and without .test.ts. */
  function testFiles(dir: string): string[] {
    return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory()
        ? testFiles(join(dir, entry.name)).map((name) => `${entry.name}/${name}`)
        : entry.name.endsWith('.test.ts')
          ? [entry.name.slice(0, -'.test.ts'.length)]
          : [],
    )
  }
  const sorted = (names: string[]) => [...names].sort()

  it('names every file of test/unit once, by its folder, and no file that is not there', () => {
    const rows = tables(section(testing, '### `test/unit`')).flatMap(({ rows }) => rows)
    const named = rows.flatMap((row) => {
      const folder = codeSpan(row.folder!).replace(/^test\/unit\/?/, '')
      return [...row.files!.matchAll(/`([a-z0-9-]+)`/g)].map((match) => folder + match[1]!)
    })
    expect(new Set(named).size, 'a test named twice').toBe(named.length)
    expect(sorted(named)).toEqual(sorted(testFiles('test/unit')))
  })

  it('names every file of test/e2e once, and no file that is not there', () => {
    const text = section(testing, '### `test/e2e`')
    const named = [...text.matchAll(/`([a-z0-9-]+)`/g)].map((match) => match[1]!)
    expect(new Set(named).size, 'a test named twice').toBe(named.length)
    expect(sorted(named)).toEqual(sorted(testFiles('test/e2e')))
  })
})

/** GitHub's anchor for a heading: lowercased, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replaceAll('`', '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

function anchors(path: string): Set<string> {
  const seen = new Map<string, number>()
  const found = new Set<string>()
  for (const { line } of proseLines(read(path))) {
    const heading = /^#{1,6} (.*)$/.exec(line)?.[1]
    if (heading === undefined) continue
    const base = slug(heading)
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    found.add(count === 0 ? base : `${base}-${count}`)
  }
  return found
}

describe('the links in docs/*.md and bench/README.md', () => {
  for (const path of docPaths) {
    it(`${path}: every relative link reaches a file of the repository, and its heading`, () => {
      const links = proseLines(read(path)).flatMap(({ line, number }) =>
        [...line.replace(/`[^`]*`/g, '').matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)].map((match) => ({
          target: match[1]!,
          where: `${path}:${number}: ${match[1]}`,
        })),
      )
      expect(links.length).toBeGreaterThan(0)
      for (const { target, where } of links) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // A URL, not a file of the repository.
        const [file = '', anchor] = target.split('#')
        const resolved = file === '' ? join(root, path) : resolve(root, dirname(path), file)
        expect(relative(root, resolved).startsWith('..'), `${where}: outside the repository`).toBe(
          false,
        )
        expect(existsSync(resolved), `${where}: no such file`).toBe(true)
        if (anchor !== undefined && resolved.endsWith('.md')) {
          expect(anchors(relative(root, resolved)).has(anchor), `${where}: no such heading`).toBe(
            true,
          )
        }
      }
    })
  }
})

describe('what the docs name', () => {
  /** A path from the repository's root to a file, in prose, code or a command line. */
  const repositoryPath =
    /(?<![\w./-])((?:src|test|public|workers|scripts|deploy|bench|docs)\/[\w./-]*\.(?:ts|js|mjs|md|json|sh|css|html|svg|png|conf)|\.ci\/run)\b/g

  for (const path of docPaths) {
    it(`${path}: every file of the repository it names exists`, () => {
      const named = read(path)
        .split('\n')
        .flatMap((line, index) =>
          [...line.matchAll(repositoryPath)].map((match) => ({
            file: match[1]!,
            where: `${path}:${index + 1}`,
          })),
        )
      expect(named.length).toBeGreaterThan(0)
      for (const { file, where } of named) {
        expect(existsSync(join(root, file)), `${where}: ${file} does not exist`).toBe(true)
      }
    })
  }
})
