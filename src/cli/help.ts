// The slabkv command's help: the overview and each command's own text (slabkv <command> --help).

export const usage = `Usage: slabkv <command> [options]

Commands:
  serve                     Run the server (slabkv serve --help lists its options)
  get KEY                   Write the value's bytes to stdout
  set KEY VALUE|- [--ttl S] Store VALUE (- reads it from stdin), optionally for S seconds
  del KEY                   Delete the key
  ls [PREFIX]               List keys, one per line
  watch [PREFIX]            Print each change to the keys as a JSON line, until stopped
  wal check DIR [options]   Report a data directory's log state; changes nothing
  wal repair DIR [options]  Cut a corrupt log at the damage (cut bytes kept in .broken files)
                            Both replay the log as a start would: give them the limits the
                            server runs with (serve's options, or SLABKV_* variables)

Client options:
  --url URL      Server address (default http://127.0.0.1:8000, env SLABKV_URL)
  --token TOKEN  Bearer token (env SLABKV_TOKEN)
  --json         Keys (and ls's and watch's PREFIX) as JSON strings, as ls --json prints them
  --             End of options: a KEY or VALUE after it may start with '-'

  -h, --help     Show this help (slabkv COMMAND --help: that command's)
  -v, --version  Show the version
`

/** The options every client command takes, after those of its own. */
const clientOptionsHelp = (own = '') => `Options:
${own}  --url URL      Server address (default http://127.0.0.1:8000, env SLABKV_URL)
  --token TOKEN  Bearer token (env SLABKV_TOKEN)
  --json         KEY is a JSON string, as slabkv ls --json prints it ("a\\u0000b"): for a key
                 no argument can hold (NUL)
  -h, --help     Show this help

Options go before --; whatever follows it is KEY or VALUE, even when it starts with '-':
slabkv get -- -k. Exit codes: 0 done, 1 no such key, 2 usage error (or the server refused the
key or value: too large, say), 3 the server could not be reached or failed.
`

const walHelp = (
  action: string,
  what: string,
  exits: string,
) => `Usage: slabkv wal ${action} DIR [options]

${what}
It replays the log as a start would: give it the limits the server runs with (serve's options,
listed by slabkv serve --help, or SLABKV_* variables).

Exit codes: ${exits}
`

export const commandHelp: Record<string, string> = {
  get: `Usage: slabkv get [options] [--] KEY

Writes the value's bytes to stdout. For a key that does not exist, prints "not found: KEY" on
stderr and exits 1.

${clientOptionsHelp()}`,
  set: `Usage: slabkv set [options] [--] KEY VALUE|-

Stores VALUE under KEY; - reads the value's bytes from stdin.

${clientOptionsHelp(`  --ttl SECONDS  Expire the key after SECONDS: a positive decimal number (fractions allowed)
                 of at most 1000000000000
`)}`,
  del: `Usage: slabkv del [options] [--] KEY

Deletes KEY. For a key that does not exist, prints "not found: KEY" on stderr and exits 1.

${clientOptionsHelp()}`,
  ls: `Usage: slabkv ls [options] [--] [PREFIX]

Lists the keys that start with PREFIX (every key without one), one per line, in no particular
order. With --json each key is printed as a JSON string (and PREFIX is read as one), so that a
key with a line break stays on one line.

${clientOptionsHelp()}`,
  watch: `Usage: slabkv watch [options] [--] [PREFIX]

Prints each change to the keys that start with PREFIX (every key without one) on stdout, one
JSON line per change in the order the server made them, until SIGINT or SIGTERM: the change's
fields plus its id (its sequence number, which is also the key's version) and event (set,
delete, expire, evict or clear; a clear has key null and reaches every watch), such as
{"id":12,"event":"set","key":"a","version":12,"size":3,"contentType":"text/plain","expiresAt":null}
Nothing else goes to stdout: pipe it to jq.

Once a stream has been open, a lost one (the server restarted, a proxy cut it, nothing came
for --idle-timeout) is resumed from the last id the server sent, after a wait that starts at
0.1 s (or the server's retry:) and doubles up to 5 s, with a line on stderr each time. No
change is printed twice or left out; it retries for as long as it takes. A first connection
that fails exits 3 instead, as kubectl get -w and etcdctl watch do, so that a wrong --url is
not taken for a quiet feed.

Options:
  --since N|now  Start after sequence number N (such as the Slabkv-Sequence header of a
                 GET /v1/kv listing, to watch from a listing without a gap) or at the present
                 (now, the default)
  --values       Set events carry the value too: value, and encoding (utf8 or base64)
  --types LIST   Only these events: a comma list among set,delete,expire,evict,clear
  --idle-timeout SECONDS
                 A stream that brings nothing for this long, not even a heartbeat, is taken
                 for lost and resumed (default 60: four heartbeats at the server's default
                 --watch-heartbeat-ms; raise it for a server that beats less often)
  --url URL      Server address (default http://127.0.0.1:8000, env SLABKV_URL)
  --token TOKEN  Bearer token (env SLABKV_TOKEN)
  --json         PREFIX is a JSON string, as slabkv ls --json prints keys ("a\\u0000b")
  -h, --help     Show this help

Exit codes: 0 stopped by SIGINT or SIGTERM (or stdout closed), 2 usage error, 3 the first
connection failed or the server refused the watch (a bad token, a bad option, too many
watchers), 6 the history to resume from is gone (--since is older than the server still
holds, or newer than anything it has): list the keys again and watch from the listing.
`,
  'wal check': walHelp(
    'check',
    "Reports the state of DIR's log and changes nothing.",
    '0 clean, 1 a torn tail (a start cuts it by itself), 2 usage error, 4 corrupt,\nor a record the limits refuse (a start refuses it too).',
  ),
  'wal repair': walHelp(
    'repair',
    'Cuts a corrupt log at the damage, keeping every cut byte (and any later segment) in .broken\nfiles; the records after the damage are then lost. Never while a server runs there.',
    '0 repaired (or nothing to repair), 1 a server holds DIR or there is no room\nto keep the cut bytes, 2 usage error, 4 nothing can be cut (a record the limits refuse, a\ndamaged snapshot).',
  ),
}
