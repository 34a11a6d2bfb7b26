// Structured logs: one JSON object per line on stdout, {"time","level","msg",...fields}.
// Handler threads log through the same function; lines from different threads never
// interleave within a line because each is one write.

export type Fields = Record<string, unknown>

export interface Log {
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
}

export function createLog(
  write: (line: string) => void = (line) => process.stdout.write(line),
): Log {
  const emit = (level: string, msg: string, fields?: Fields) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`)
  return {
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  }
}
