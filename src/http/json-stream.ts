// A JSON answer written as the connection takes it. A batch that reads megabytes of values
// would otherwise hold its whole answer as one string beside the values (V8 refuses strings past
// about 512 MiB, and each byte of a value can take six in JSON). Here the answer is encoded a few
// items at a time, each time the response asks for more, so what sits in memory beyond the
// values is one chunk, and a client that stops reading stops the encoding too.

/** Encoded items are gathered up to about this many characters before they are sent. */
const chunkSizeTarget = 64 * 1024

/** The text of {"<name>":[item0,item1,…]}, produced on demand; item(i) gives item i. */
export function jsonArrayStream(
  name: string,
  count: number,
  item: (index: number) => unknown,
): ReadableStream<Uint8Array> {
  let index = 0
  let opened = false
  const encoder = new TextEncoder()
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        let chunk = ''
        if (!opened) {
          opened = true
          chunk = `{${JSON.stringify(name)}:[`
        }
        while (index < count && chunk.length < chunkSizeTarget) {
          chunk += `${index === 0 ? '' : ','}${JSON.stringify(item(index))}`
          index++
        }
        if (index === count) chunk += ']}'
        controller.enqueue(encoder.encode(chunk))
        if (index === count) controller.close()
      },
    },
    // Nothing is encoded ahead of what the connection asks for.
    { highWaterMark: 0 },
  )
}
