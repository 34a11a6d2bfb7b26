import { connect, createServer, type Socket } from 'node:net'

// A TCP relay between a browser and a server, for what only the network can do to a page: cut
// its open connections (a reset, as a dropped link or a crashed proxy gives), refuse new ones
// for a while, and send them to another port once the server behind has restarted there. The
// page keeps one origin, the relay's, through all of it. With `record`, it also keeps the bytes
// each connection carried, both ways: what the server was asked (a request's headers) and what
// the browser was sent, as the server sees them, whatever the browser reports.

/** The bytes one relayed connection carried so far, as latin1 text. */
export interface RelayedConnection {
  toServer: string
  toClient: string
}

export interface TcpProxy {
  /** http://127.0.0.1:<port> of the relay. */
  url: string
  /** The loopback port connections are relayed to from now on. */
  target: number
  /** While true, a new connection is reset as soon as it is accepted. */
  refusing: boolean
  /** Every connection relayed so far, in the order accepted; empty unless `record` was asked. */
  connections: RelayedConnection[]
  /** Resets every connection open now, both sides. */
  cut: () => void
  close: () => Promise<void>
}

export async function startTcpProxy(
  target: number,
  options: { record?: boolean } = {},
): Promise<TcpProxy> {
  const open = new Set<Socket>()
  const track = (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
    // A reset is the point of cut(); the relay itself must not fail on it.
    socket.on('error', () => {})
  }
  const server = createServer((client) => {
    track(client)
    if (proxy.refusing) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(proxy.target, '127.0.0.1')
    track(upstream)
    if (options.record === true) {
      const relayed: RelayedConnection = { toServer: '', toClient: '' }
      proxy.connections.push(relayed)
      client.on('data', (chunk: Buffer) => {
        relayed.toServer += chunk.toString('latin1')
      })
      upstream.on('data', (chunk: Buffer) => {
        relayed.toClient += chunk.toString('latin1')
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.once('close', () => upstream.destroy())
    upstream.once('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the relay has no port')
  const proxy: TcpProxy = {
    url: `http://127.0.0.1:${address.port}`,
    target,
    refusing: false,
    connections: [],
    cut: () => {
      for (const socket of open) socket.resetAndDestroy()
    },
    close: async () => {
      proxy.cut()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  return proxy
}
